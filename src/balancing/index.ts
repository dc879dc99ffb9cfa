// Public surface of balancing/: what the proxy calls.

export { affinityCookieHeader, affinityCookieName, readCookie, type Tier } from './cookie.ts';
export { hashString } from './hash.ts';
export {
  describeNoEndpoint,
  type PickInput,
  type PickResult,
  type PinResult,
  pickEndpoint,
  pinEndpoint,
  rendezvousPick,
} from './pick.ts';
