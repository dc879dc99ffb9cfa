// AdmissionReview v1 envelope: the few fields the webhook reads and writes. The apiserver sends
// much more; everything not named here is passed through untouched or ignored.

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionRequest {
  uid: string;
  kind?: GroupVersionKind;
  resource?: GroupVersionResource;
  subResource?: string;
  operation?: string;
  namespace?: string;
  name?: string;
  object?: unknown;
  [key: string]: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON array of RFC 6902 operations. */
  patch?: string;
  warnings?: string[];
  status?: { code?: number; message?: string };
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** The envelope is unusable: the HTTP layer answers 400 and the apiserver applies failurePolicy. */
export class ReviewError extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the envelope only. What the pod looks like is the mutator's business, and it fails open. */
export function parseAdmissionReview(body: unknown): AdmissionReview {
  if (!isObject(body)) throw new ReviewError('body is not a JSON object');
  if (body.kind !== 'AdmissionReview') throw new ReviewError('kind must be AdmissionReview');
  // v1beta1 has a different response contract (patchType optional, no uid echo rule); the webhook
  // configuration only offers v1, so anything else is a client bug.
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    throw new ReviewError(`apiVersion must be ${ADMISSION_API_VERSION}`);
  }
  const request = body.request;
  if (!isObject(request)) throw new ReviewError('request is missing');
  if (typeof request.uid !== 'string' || request.uid === '') throw new ReviewError('request.uid is missing');
  return body as unknown as AdmissionReview;
}
