'use strict';
// @hyvve/event-publisher/nest, CommonJS entry (NestJS 10/11 apps; Nest 12 where Node can require ES modules).
const { createNestBindings } = require('./create.js');

function loadNestCommon() {
  try {
    return require('@nestjs/common');
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && /@nestjs\/common/.test(err.message)) {
      err.message = `@hyvve/event-publisher/nest needs @nestjs/common (10, 11 or 12) installed next to it: ${err.message}`;
    } else if (err && err.code === 'ERR_REQUIRE_ESM') {
      err.message =
        'This @nestjs/common is an ES module (NestJS 12) and this Node cannot require() it: ' +
        "import '@hyvve/event-publisher/nest' from an ES module instead. " +
        err.message;
    }
    throw err;
  }
}

module.exports = createNestBindings(loadNestCommon(), require('../index.js'));
