'use strict';
// Reference (a): the platform's publisher as it is, ioredis + Prisma 7 (@prisma/adapter-pg).
// Written from the platform's semantics, not copied: XADD first, then eventMetadata.create;
// publishBatch pipelines the XADDs (not atomic) and then createMany.
const Redis = require('ioredis');
const { PrismaClient } = require('@prisma/client');
const { PrismaPg } = require('@prisma/adapter-pg');
const { buildEvent, xaddArgs, streamIds } = require('./envelope');

const metadata = (event, streamId) => ({
  // `id` is left to Prisma's @default(cuid()), made client-side as in the platform.
  eventId: event.id,
  streamId,
  type: event.type,
  source: event.source,
  tenantId: event.tenantId,
  correlationId: event.correlationId,
  status: 'PENDING',
  attempts: 0,
});

class PrismaPublisher {
  constructor(redis, prisma, stream) {
    this.redis = redis;
    this.prisma = prisma;
    this.stream = stream;
  }

  static async connect({ redisUrl, databaseUrl, stream = 'hyvve:events:main' }) {
    const redis = new Redis(redisUrl); // ioredis defaults, as the platform constructs it
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
    await Promise.all([redis.ping(), prisma.$connect()]);
    return new PrismaPublisher(redis, prisma, stream);
  }

  async publish(type, data, context) {
    const event = buildEvent(type, data, context);
    const streamId = await this.redis.xadd(...xaddArgs(this.stream, event));
    await this.prisma.eventMetadata.create({ data: metadata(event, streamId) });
    return event.id;
  }

  async publishBatch(events) {
    const built = events.map((e) => buildEvent(e.type, e.data, e.context));
    const pipeline = this.redis.pipeline();
    for (const event of built) pipeline.xadd(...xaddArgs(this.stream, event));
    const ids = streamIds(await pipeline.exec());
    await this.prisma.eventMetadata.createMany({ data: built.map((e, i) => metadata(e, ids[i])) });
    return built.map((e) => e.id);
  }

  async close() {
    await this.prisma.$disconnect();
    await this.redis.quit();
  }
}

module.exports = { PrismaPublisher, EventPublisher: PrismaPublisher };
