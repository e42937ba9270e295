/** Firmware images: the OVMF footer table (parse, build, patch) and the EFI GUIDs that name its entries. */
export * from './errors.js';
export * from './guid.js';
export * from './ovmf.js';
