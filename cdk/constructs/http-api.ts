// The public HTTP API (docs/api.md): every route proxies to the one `api` function, all but /healthz behind the authorizer.
import { Duration, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  HttpApi,
  HttpMethod,
  HttpNoneAuthorizer,
  HttpRoute,
  HttpRouteKey,
  HttpStage,
  LogGroupLogDestination,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { removalPolicyOf, retentionOf, type StageConfig } from '../config.ts';
import { API_ROUTES } from '../../lambdas/handlers/routes.ts';

/** The contract's routes, from the one list the app is held to (lambdas/handlers/routes.ts). `public` routes skip the authorizer. */
export const ROUTES: readonly { method: HttpMethod; path: string; public?: true }[] = API_ROUTES.map((r) => ({
  method: HttpMethod[r.method],
  path: r.path,
  ...(r.public ? { public: true as const } : {}),
}));

/**
 * API Gateway ends every integration at 30 s (a hard HTTP API limit), so the API caps an agent's
 * `?wait=` long poll at 25 s server side: the empty answer then still reaches the agent, which polls again.
 */
export const LONG_POLL_MAX_SECONDS = 25;

/**
 * One JSON line per request. Deliberately no query string, headers or `$context.authorizer.*`
 * values: BMCs that cannot send headers put their bearer token in `?access_token=`.
 */
const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    requestTime: '$context.requestTime',
    sourceIp: '$context.identity.sourceIp',
    userAgent: '$context.identity.userAgent',
    routeKey: '$context.routeKey',
    path: '$context.path',
    status: '$context.status',
    responseLength: '$context.responseLength',
    responseLatency: '$context.responseLatency',
    integrationStatus: '$context.integrationStatus',
    integrationLatency: '$context.integrationLatency',
    integrationError: '$context.integrationErrorMessage',
    authorizerError: '$context.authorizer.error',
    authorizerLatency: '$context.authorizer.latency',
  }),
);

export interface CoordinatorHttpApiProps {
  config: StageConfig;
  handler: IFunction;
  authorizer: IFunction;
}

export class CoordinatorHttpApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly routes: HttpRoute[];
  readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: CoordinatorHttpApiProps) {
    super(scope, id);
    const { config } = props;
    this.api = new HttpApi(this, 'Api', {
      apiName: `${config.stage}-xpu-reboot-coordinator`,
      description: 'xPU reboot coordinator: Redfish webhook, native events, reboots, agent commands, reports',
      createDefaultStage: false,
    });

    // A REQUEST authorizer with NO identity source and caching off. HTTP APIs answer 401 without
    // calling the authorizer when any listed identity source is missing, so listing both
    // `$request.header.Authorization` and `$request.querystring.access_token` would demand both,
    // and listing only the header would lock out BMCs that can only put the token in the URL
    // (RFC 6750 §2.3). Without an identity source API Gateway cannot cache, so the function runs on
    // every request; it reads one hashed-token item, and may keep a short in-memory cache itself.
    const authorizer = new HttpLambdaAuthorizer('TokenAuthorizer', props.authorizer, {
      authorizerName: 'token',
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      identitySource: [],
      resultsCacheTtl: Duration.seconds(0),
    });
    // No `timeout`: unset is API Gateway's maximum, 30 s (CDK only accepts up to 29 s when set).
    const integration = new HttpLambdaIntegration('ApiIntegration', props.handler);
    this.routes = ROUTES.flatMap((r) =>
      this.api.addRoutes({
        path: r.path,
        methods: [r.method],
        integration,
        authorizer: r.public ? new HttpNoneAuthorizer() : authorizer,
      }),
    );
    // Everything else (a path no route has, a method a route does not have) goes to the API too, which
    // answers 404 {"error":"NotFound",...} in the contract's shape as locally; without this route API
    // Gateway answers 404 {"message":"Not Found"} itself. Behind the authorizer, which lets every token
    // through (authorizer.ts NOBODY), so a bad token still gets the API's 401.
    new HttpRoute(this, 'DefaultRoute', {
      httpApi: this.api,
      routeKey: HttpRouteKey.DEFAULT,
      integration,
      authorizer,
    });
    for (const route of this.routes.filter((r) => ROUTES.some((p) => p.public && p.path === r.path))) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'Public by contract: /healthz (load balancers, uptime checks), /openapi.json and the /ui page reveal nothing; /ui asks for the operator token and calls the API with it.',
      });
    }
    const ui = this.routes.find((r) => r.path === '/ui');
    if (ui) {
      Validations.of(ui).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason: 'GET /ui is a static page with no data: it asks for the operator token and calls the authorized routes with it.',
      });
    }

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: retentionOf(config),
      removalPolicy: removalPolicyOf(config),
    });
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: config.apiThrottleRate, burstLimit: config.apiThrottleBurst },
      accessLogSettings: { destination: new LogGroupLogDestination(this.accessLogs), format: ACCESS_LOG_FORMAT },
    });
  }

  get url(): string {
    return this.stage.url;
  }
}
