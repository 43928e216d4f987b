// Prisma 7 reads its settings from here. Only `prisma generate` is used (offline, see
// package.json); the database URL is given at run time to @prisma/adapter-pg instead.
const path = require('node:path');

module.exports = {
  schema: path.join(__dirname, 'schema.prisma'),
};
