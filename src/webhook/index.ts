// `wharf webhook`: mutating admission webhook that mounts the per-node log directory into pods.

export { parseWebhookArgs, runWebhook, WEBHOOK_HELP } from './cli.ts';
export {
  DEFAULT_VOLUME_NAME,
  escapePointer,
  type JsonPatchOp,
  MOUNTED_ANNOTATION,
  type MutateOptions,
  mutatePod,
  OPT_OUT_ANNOTATION,
  podPatch,
  SUB_PATH_EXPR,
} from './mutate.ts';
export { type AdmissionReview, parseAdmissionReview, ReviewError } from './review.ts';
export {
  DEFAULT_MAX_BODY,
  parseListen,
  startWebhook,
  type WebhookHandle,
  type WebhookOptions,
} from './server.ts';
