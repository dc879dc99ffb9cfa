export {
  type EndpointSpec,
  endpointSlice,
  type ServiceOptions,
  type SliceOptions,
  service,
  type TlsSecretOptions,
  tlsSecret,
} from './builders.ts';
export { FakeApiServer, type FakeApiServerOptions, type RequestRecord } from './server.ts';
export { type Change, RESOURCES, Store, StoreError } from './store.ts';
