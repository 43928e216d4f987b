/** Tests run against the real Redis and Postgres (see scripts/ensure-services.sh). */
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/__test__/**/*.test.js'],
  testTimeout: 60_000,
};
