// The DynamoDB tables: reboots/inventory/commands in one single-table design, and Powertools idempotency records.
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { removalPolicyOf, type StageConfig } from '../config.ts';
import { GSI1_ATTRIBUTES, GSI2_ATTRIBUTES, GSI3_ATTRIBUTES } from '../../lambdas/adapters/table-schema.ts';

export class Tables extends Construct {
  /** pk/sk, GSIs gsi1 (day-sharded listings, open commands), gsi2 (by node) and gsi3 (sparse: reboots not ended), TTL `ttl` (ended reboots, event keys). Items (nodes, hashed tokens) are written by `rebootctl inventory push`. */
  readonly reboots: Table;
  /** Powertools idempotency layout: pk `id`, TTL `expiration`. */
  readonly idempotency: Table;

  constructor(scope: Construct, id: string, props: { config: StageConfig }) {
    super(scope, id);
    const common = {
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: removalPolicyOf(props.config),
      deletionProtection: props.config.removalPolicy === 'retain',
    };
    this.reboots = new Table(this, 'RebootsTable', {
      ...common,
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      timeToLiveAttribute: 'ttl',
    });
    this.reboots.addGlobalSecondaryIndex({
      indexName: 'gsi1',
      partitionKey: { name: 'gsi1pk', type: AttributeType.STRING },
      sortKey: { name: 'gsi1sk', type: AttributeType.STRING },
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: [...GSI1_ATTRIBUTES],
    });
    // A node's reboots (lambdas/adapters/reboot-index.ts); gsi1 lists the fleet by day shards.
    this.reboots.addGlobalSecondaryIndex({
      indexName: 'gsi2',
      partitionKey: { name: 'gsi2pk', type: AttributeType.STRING },
      sortKey: { name: 'gsi2sk', type: AttributeType.STRING },
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: [...GSI2_ATTRIBUTES],
    });
    // Sparse: the reboots not ended, for the reconciler (its readWrite grant covers the table's indexes).
    this.reboots.addGlobalSecondaryIndex({
      indexName: 'gsi3',
      partitionKey: { name: 'gsi3pk', type: AttributeType.STRING },
      sortKey: { name: 'gsi3sk', type: AttributeType.STRING },
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: [...GSI3_ATTRIBUTES],
    });
    this.idempotency = new Table(this, 'IdempotencyTable', {
      ...common,
      partitionKey: { name: 'id', type: AttributeType.STRING },
      timeToLiveAttribute: 'expiration',
    });
  }
}
