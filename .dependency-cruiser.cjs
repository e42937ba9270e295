/**
 * The import rules of lib/ (checked by `npm test`, see ARCHITECTURE.md): no
 * cycles, and each area imports only areas on a lower layer. Layers, lowest
 * first:
 *   0 errors.ts, util/, binding.ts   shared base, no sevkit imports above it
 *   1 platform/                      the SEV device, its constants and CPUID
 *   2 firmware/, certs/, qmp/        OVMF images, certificates, QEMU's protocol
 *   3 launch/                        owner-side launch cryptography (SEV, SEV-ES)
 *   4 snp/                           SEV-SNP: reports and their chains, launch digests, ID blocks, the guest device
 *   5 vm/, aleph/, host/             supervisor, aleph's wire protocol, host checks
 *   6 sim/, guest-agent/             the software SEV platform and its QEMU wrapper; the SNP guest agent
 *   7 crn/, owner/                   the two ends of the protocol
 *   8 demo/                          both ends and the simulator together
 *   9 cli/, index.ts                 entry points
 */
const LAYERS = [
  ['lib/errors\\.ts', 'lib/util/', 'lib/binding\\.ts'],
  ['lib/platform/'],
  ['lib/firmware/', 'lib/certs/', 'lib/qmp/'],
  ['lib/launch/'],
  ['lib/snp/'],
  ['lib/vm/', 'lib/aleph/', 'lib/host/'],
  ['lib/sim/', 'lib/guest-agent/'],
  ['lib/crn/', 'lib/owner/'],
  ['lib/demo/'],
  ['lib/cli/', 'lib/index\\.ts', 'lib/testing\\.ts'],
];
const re = (paths) => `^(${paths.join('|')})`;
const upward = LAYERS.flatMap((paths, i) => {
  const above = LAYERS.slice(i + 1).flat();
  return above.length
    ? [
        {
          name: `layer-${i}-no-upward`,
          comment: `${paths.join(', ')} may not import a higher layer`,
          severity: 'error',
          from: { path: re(paths) },
          to: { path: re(above) },
        },
      ]
    : [];
});
// Areas on the same layer stay independent of each other.
const sideways = LAYERS.flatMap((paths, i) =>
  paths.length > 1 && i > 0
    ? paths.map((p) => ({
        name: `layer-${i}-no-sideways`,
        comment: `${p} may not import its layer's other areas`,
        severity: 'error',
        from: { path: `^${p}` },
        to: { path: re(paths.filter((q) => q !== p)) },
      }))
    : [],
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'import cycles (type-only ones too) make a layer hard to read and to test alone',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    ...sideways,
    {
      name: 'lib-not-test',
      comment: 'the library never imports test support',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(test|bench|scripts)/' },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|build)/' },
  },
};
