// Lambda entry: AWS IoT Core's custom authorizer for the agents' push channel (handlers/iot-authorizer.ts).
import type { Context } from 'aws-lambda';
import { createIotAuthorizer, type IotAuthorizerEvent } from '../handlers/iot-authorizer.ts';
import { deps } from './runtime.ts';

let account = '';
const authorize = createIotAuthorizer({ ...deps, region: process.env.AWS_REGION ?? 'us-east-1', account: () => account });

export const handler = (event: IotAuthorizerEvent, context?: Context) => {
  // arn:aws:lambda:<region>:<account>:function:<name>
  account ||= context?.invokedFunctionArn?.split(':')[4] ?? '';
  return authorize(event);
};
