/** aleph's wire protocol, used by both the CRN and the guest owner: wallets, signed request headers, message shapes. */
export * from './auth.js';
export * from './messages.js';
export * from './wallet.js';
