// @hyvve/event-publisher/nest, ES module entry.
// When @nestjs/common can be required (Nest 10/11, or Nest 12 on a Node that requires ES modules),
// this re-exports the CommonJS entry, so an app mixing `import` and `require` gets the same classes.
// Otherwise (Nest 12 on Node 20) it builds them from the ES module @nestjs/common.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function commonIsRequirable() {
  try {
    require('@nestjs/common');
    return true;
  } catch (err) {
    if (err && (err.code === 'ERR_REQUIRE_ESM' || err.code === 'ERR_REQUIRE_ASYNC_MODULE')) return false;
    throw err;
  }
}

const nest = commonIsRequirable()
  ? require('./index.js')
  : require('./create.js').createNestBindings(await import('@nestjs/common'), require('../index.js'));

export const { EventPublisherModule, EventPublisherService, EventPublisherHealthIndicator, EventOutbox, EVENT_PUBLISHER_OPTIONS } = nest;
