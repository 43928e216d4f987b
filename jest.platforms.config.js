/** `npm run test:platforms` (scripts/platforms/test.sh): __test__/platforms/, after the cross builds. */
const base = require('./jest.config.js');

module.exports = { ...base, testMatch: ['<rootDir>/__test__/platforms/**/*.test.js'], testPathIgnorePatterns: ['/node_modules/'] };
