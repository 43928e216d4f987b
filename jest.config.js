/** Tests run against the real Redis and Postgres (see scripts/ensure-services.sh). */
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/__test__/**/*.test.js'],
  // __test__/platforms/ runs under `npm run test:platforms` (scripts/platforms/test.sh), after
  // the cross builds it checks (jest.platforms.config.js).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/__test__/platforms/'],
  testTimeout: 60_000,
};
