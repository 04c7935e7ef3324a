// The agents' push channel in AWS: IoT Core with a custom authorizer (MQTT user name = agent id, password = token),
// one wake-up topic per agent, and the right for the functions that write commands to publish wake-ups there.
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnAuthorizer } from 'aws-cdk-lib/aws-iot';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { StageConfig } from '../config.ts';

/** Topics under this prefix carry wake-ups (lambdas/core/push-channel.ts). */
export const WAKE_TOPIC_PREFIX = 'xpu-reboot/agents/';

export interface PushChannelProps {
  config: StageConfig;
  authorizer: LambdaFunction;
  /** Functions that write commands, and so publish wake-ups. */
  publishers: LambdaFunction[];
}

export class PushChannel extends Construct {
  readonly authorizer: CfnAuthorizer;
  readonly authorizerName: string;

  constructor(scope: Construct, id: string, props: PushChannelProps) {
    super(scope, id);
    const { config } = props;
    this.authorizerName = `${config.stage}-xpu-reboot-agents`;
    this.authorizer = new CfnAuthorizer(this, 'AgentAuthorizer', {
      authorizerName: this.authorizerName,
      authorizerFunctionArn: props.authorizer.functionArn,
      // Agents present user name and password, not a signed token.
      signingDisabled: true,
      status: 'ACTIVE',
    });
    props.authorizer.addPermission('IotInvokesAuthorizer', {
      principal: new ServicePrincipal('iot.amazonaws.com'),
      sourceArn: this.authorizer.attrArn,
    });
    // Without the account's data endpoint (stage config iotDataEndpoint) nothing is published, and
    // agents on the channel pick up commands at their periodic fetch.
    if (!config.iotDataEndpoint) return;
    const topics = Stack.of(this).formatArn({
      service: 'iot',
      resource: 'topic',
      resourceName: `${WAKE_TOPIC_PREFIX}*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    for (const fn of props.publishers) {
      fn.addEnvironment('IOT_DATA_ENDPOINT', config.iotDataEndpoint);
      fn.addToRolePolicy(new PolicyStatement({ actions: ['iot:Publish'], resources: [topics] }));
      Validations.of(fn).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/${WAKE_TOPIC_PREFIX}*]`,
        reason: 'Publishes wake-ups on the topic of whichever agent a command is for: one topic per agent, under this prefix only.',
      });
    }
  }
}
