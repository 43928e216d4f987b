// docs/testing.md's sample without Nest, verbatim between the markers (checked by
// __test__/core/readme.test.js), compiled under strict.
// Sample begin
import { EventPublisherError } from '@hyvve/event-publisher';
import { createTestPublisher } from '@hyvve/event-publisher/testing';

const fake = createTestPublisher({ source: 'approvals' }); // store URLs are not used
await fake.publish('approval.item.approved', { approvalId: 'appr_1', type: 'content', title: 'Launch post', decision: 'approved', decidedById: 'u1', confidenceScore: 92 }, { tenantId: 'ws-1', userId: 'u1' });
const [published] = fake.published(); // published.event.type: 'approval.item.approved', published.row.status: 'PENDING'

fake.failNext('ERR_REDIS'); // the next publish rejects with that code and writes nothing
const refused = await fake.publish('pm.task.phase_changed', { taskId: 't1', phase: 'review' }, { tenantId: 'ws-1', userId: 'u1' }).catch((e: unknown) => e);
const isRedisError: boolean = refused instanceof EventPublisherError && refused.code === 'ERR_REDIS';
// Sample end
export { published, isRedisError };
