// A unit test, unchanged by the migration: the publisher is replaced by a mock under the same token.
import { Test } from '@nestjs/testing';
import { EventPublisherService } from '../../events';
import { ApprovalRouterService } from './approval-router.service';

describe('ApprovalRouterService', () => {
  it('publishes approval.item.requested', async () => {
    const eventPublisher = { publish: jest.fn().mockResolvedValue('event-id') };
    const moduleRef = await Test.createTestingModule({
      providers: [ApprovalRouterService, { provide: EventPublisherService, useValue: eventPublisher }],
    }).compile();
    const router = moduleRef.get(ApprovalRouterService);

    await router.announce('ws-1', 'user-1', { id: 'a-1', type: 'content', title: 'T', confidenceScore: 70, dueAt: new Date() });

    expect(eventPublisher.publish).toHaveBeenCalledWith(
      'approval.item.requested',
      expect.objectContaining({ approvalId: 'a-1' }),
      { tenantId: 'ws-1', userId: 'user-1', source: 'approval-router' },
    );
  });
});
