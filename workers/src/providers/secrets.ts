/**
 * The Worker's optional secrets, merged into the Env that `wrangler types` generates.
 *
 * Why not in wrangler.toml: wrangler 4.164 knows one kind of declared secret, `[secrets] required`,
 * and `wrangler deploy` refuses to deploy while any of those is unset. That is right for BRIDGE_SECRET
 * and API_TOKEN (declared there, so generated), wrong for provider keys and webhook signing secrets:
 * a deployment whose agents use only OpenAI has no Deepgram key. The generated Env therefore cannot
 * contain them, and they are declared here, optional, by name; nothing reads env by a cast.
 */

/** Read by the provider factories (vendors.ts) of the agents that use them. */
export const PROVIDER_SECRETS = [
  "OPENAI_API_KEY",
  "OPENAI_BASE_URL",
  "DEEPGRAM_API_KEY",
  "ELEVENLABS_API_KEY",
  "CARTESIA_API_KEY",
] as const;

/**
 * Named by agents' `signingSecret` (webhook tools, callEndedWebhook). check:agents fails when a
 * bundled agent names a secret missing here, so the Env type stays complete.
 */
export const WEBHOOK_SECRETS = ["CRM_WEBHOOK_SECRET"] as const;

export type ProviderSecretName = (typeof PROVIDER_SECRETS)[number];
export type WebhookSecretName = (typeof WEBHOOK_SECRETS)[number];
export type OptionalSecrets = { readonly [Name in ProviderSecretName | WebhookSecretName]?: string };

declare global {
  // Declaration merging with the generated `interface Env extends __BaseEnv_Env {}`.
  interface Env extends OptionalSecrets {}
  namespace Cloudflare {
    interface Env extends OptionalSecrets {}
  }
}

/**
 * A secret named at run time (an agent's signingSecret): undefined unless the env holds a non-empty
 * string under that name. Reads an own property only, so a name like "toString" finds nothing.
 */
export function secretByName(env: object, name: string): string | undefined {
  if (!Object.hasOwn(env, name)) return undefined;
  const value: unknown = Reflect.get(env, name);
  return typeof value === "string" && value !== "" ? value : undefined;
}
