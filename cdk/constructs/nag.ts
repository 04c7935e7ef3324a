// Helpers to acknowledge cdk-nag findings precisely: findings name resources as `<LogicalId.Arn>`.
import { CfnResource, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** How cdk-nag prints `Fn::GetAtt [<logical id of construct>, Arn]` inside a finding id. */
export function nagArn(construct: IConstruct): string {
  const cfn = construct.node.defaultChild;
  if (!CfnResource.isCfnResource(cfn)) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return `<${Stack.of(construct).resolve(cfn.logicalId)}.Arn>`;
}
