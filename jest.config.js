// Two projects: unit (workflow logic with stubbed activities, no services) and
// integration (real Temporal, MariaDB, sshd, moto, s3proxy: started by scripts/stack.sh).
// ts-jest needs TypeScript's compiler API, which TypeScript 7 dropped: typescript is pinned to ~5.9. It only
// transpiles (tsconfig.json has isolatedModules: tsc --noEmit checks the types once, in the static checks): every
// .ts file of the repository transpiles in ~9 s of CPU, so a faster transformer (@swc/jest) would save little.
const transform = { '^.+\\.ts$': 'ts-jest' };
module.exports = {
  projects: [
    { displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'], transform, testEnvironment: 'node' },
    {
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      transform,
      testEnvironment: 'node',
      slowTestThreshold: 60,
    },
    // The Web UI path in Debian's headless Chromium (playwright-core, no browser download); needs the stack.
    {
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.test.ts'],
      transform,
      testEnvironment: 'node',
      slowTestThreshold: 90,
    },
    // Faults survived (worker killed, Temporal restarted, network faults, failing destinations): bounded, run after
    // the main suite by scripts/stack.sh, each test recording its row of the results table (test/helpers/chaos.ts).
    {
      displayName: 'chaos',
      testMatch: ['<rootDir>/test/chaos/**/*.test.ts'],
      transform,
      testEnvironment: 'node',
      slowTestThreshold: 300,
    },
    // Checks over what the rest of the suite left behind (secrets in workflow histories): run after it.
    { displayName: 'audit', testMatch: ['<rootDir>/test/audit/**/*.test.ts'], transform, testEnvironment: 'node' },
  ],
  testTimeout: 120000,
};
