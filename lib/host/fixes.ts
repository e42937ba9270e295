/**
 * The fix `sev-status` suggests for each failing check, one line each, keyed by cause (checks.ts and
 * snp-readiness.ts choose them). Scripts show these strings as they are: reword, never repurpose a key.
 */

/** Every fix text, keyed by cause. */
export const FIXES = {
  amdCpu: 'SEV needs an AMD EPYC processor (7001 series or later); run confidential VMs on an AMD EPYC host',
  epyc: 'SEV is offered by AMD EPYC server processors only (not Ryzen or Threadripper); use an EPYC host',
  cpuid: 'build the sevkit native addon (npm run build) so CPUID can be read directly; /proc/cpuinfo lacks the C-bit and ASID counts',
  biosSev: 'BIOS: enable "SMEE" (Secure Memory Encryption) and "SEV Control", set "SEV ASID Count" (AMD CBS > CPU Common Options), then reboot',
  biosSme: 'BIOS: enable "SMEE" (Secure Memory Encryption Enable) so SYSCFG.MemEncryptionModEn is set, then reboot',
  biosSevAsids:
    'BIOS: set "SEV ASID Count" / "SEV-ES ASID Space Limit" so that some ASIDs remain for plain SEV guests (CPUID 0x8000001F ECX >= EDX), then reboot',
  biosSevEs: 'BIOS: enable SEV-ES ("SEV-ES ASID Space Limit Control" enabled), then reboot',
  biosSevEsAsids: 'BIOS: set "SEV-ES ASID Space Limit" above 1 so that ASIDs 1..limit-1 are reserved for SEV-ES/SNP guests, then reboot',
  biosSnp: 'BIOS: enable "SEV-SNP Support" and "SNP Memory (RMP Table) Coverage", and the IOMMU, then reboot',
  kvmAmd: 'BIOS: enable SVM (AMD-V); then load the module: modprobe kvm_amd',
  kernelSev:
    'kernel parameters: add "mem_encrypt=on kvm_amd.sev=1" to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot (or reload now: modprobe -r kvm_amd && modprobe kvm_amd sev=1)',
  kernelSevEs:
    'kernel parameter: add "kvm_amd.sev_es=1" to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot (or: modprobe -r kvm_amd && modprobe kvm_amd sev=1 sev_es=1)',
  kernelSevSnp: 'kernel parameter: add "kvm_amd.sev_snp=1" to GRUB_CMDLINE_LINUX (with the IOMMU enabled), run update-grub and reboot',
  kernelSevMissing: 'kvm_amd has no sev parameter: use a kernel built with CONFIG_KVM_AMD_SEV=y (Linux >= 4.16; every major distribution kernel)',
  kernelEsTooOld: 'SEV-ES guests need a host kernel with SEV-ES support (Linux >= 5.11: kvm_amd has a sev_es parameter); install a newer kernel',
  kernelSnpTooOld: 'SEV-SNP guests need a host kernel with SNP support (Linux >= 6.11: kvm_amd has a sev_snp parameter); install a newer kernel',
  notADevice: 'the SEV device path does not name a device node: point --device / SEVKIT_DEVICE at /dev/sev (a character device)',
  devSevMissing:
    'the ccp driver creates /dev/sev only when the BIOS enabled SEV: enable SEV in BIOS, then modprobe ccp (dmesg shows "SEV: memory encryption not enabled by BIOS" otherwise)',
  devSevAccess:
    'udev rule: echo \'KERNEL=="sev", GROUP="kvm", MODE="0660"\' > /etc/udev/rules.d/60-sev.rules && udevadm control --reload && udevadm trigger --name-match=sev; then add the user to the kvm group: usermod -aG kvm USER (log in again)',
  kvmAccess: 'add the user to the kvm group: usermod -aG kvm USER and log in again (Debian ships /dev/kvm as root:kvm 0660)',
  kvmApi: "KVM answered an unexpected API version: use the distribution kernel's KVM modules (KVM_API_VERSION is 12)",
  memlock:
    'raise RLIMIT_MEMLOCK (SEV pins all guest memory): "ulimit -l unlimited" in the launching shell, LimitMEMLOCK=infinity in the systemd unit, or "USER - memlock unlimited" in /etc/security/limits.conf (root with CAP_IPC_LOCK is exempt)',
  addon: 'build the sevkit native addon: npm run build (needs g++, make and python3)',
  firmwareUpdate:
    "update the SEV firmware: install the board vendor's latest BIOS, or a newer linux-firmware package (amd/amd_sev_fam*.sbin, loaded by the ccp driver at boot)",
  firmwareError: 'check dmesg for ccp/SEV errors; update the BIOS / SEV firmware; a PSP that timed out needs a reboot',
  firmwareTimeout: 'the PSP did not answer: check dmesg for "sev command ... timed out, disabling PSP"; a reboot is needed',
  firmwareEs:
    'the firmware was initialized without SEV-ES: enable SEV-ES in BIOS ("SEV-ES ASID Space Limit" > 1) and load kvm_amd with sev_es=1, then reboot so the platform is initialized with SEV-ES',
  qemu: 'install QEMU: apt install qemu-system-x86 (or dnf install qemu-kvm), or point SEVKIT_QEMU at the binary',
  qemuOld: 'SEV guests need QEMU >= 2.12: upgrade qemu-system-x86',
  qemuEs: 'SEV-ES guests need QEMU >= 6.0: upgrade qemu-system-x86',
  qemuSnp: 'SEV-SNP guests need QEMU >= 9.1 (sev-snp-guest object): upgrade qemu-system-x86 (e.g. from backports)',
  ovmf: 'install OVMF: apt install ovmf (or dnf install edk2-ovmf), or list its directory in SEVKIT_OVMF_DIRS',
  ovmfEs: 'SEV-ES guests need an OVMF with the SEV-ES reset block (edk2 >= 2021.02): upgrade ovmf',
  ovmfSnp: 'SEV-SNP guests need an OVMF with SEV metadata (edk2 >= 2022.05): upgrade ovmf',
} as const;
