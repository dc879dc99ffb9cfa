# syntax=docker/dockerfile:1
# Wharf image: `docker build -t registry.example.com/wharf:$(node -p "require('./package.json').version") .`
#
# Base: Node.js 24 LTS on Debian 13 slim, pinned by tag and by digest (of the multi-arch index). The
# digest is the one several public projects pin for this tag; it was not checked against the
# registry from the machine this file was written on, which has no registry access. Check it (or
# pin the one your registry mirror serves) with
#   docker buildx imagetools inspect node:24.21.0-trixie-slim
# and pass another with --build-arg NODE_IMAGE=node:<version>-trixie-slim@sha256:<digest>.
ARG NODE_IMAGE=node:24.21.0-trixie-slim@sha256:8ec5d7557396cfe32d21c3f9c13072355ceab22b584578ca4bb28af31120cffe

# Stage 1: compile. Every dependency (TypeScript), tsc -> dist/, then `npm pack`, which takes exactly
# what package.json's `files` lists: bin/wharf.js and dist/, without the demo and the fake apiserver
# (development tools), and never the sources, tests or benchmarks.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY LICENSE tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY bin ./bin
COPY src ./src
RUN node scripts/build.mjs \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && mkdir /app \
 && tar -xzf /tmp/wharf-*.tgz -C /app --strip-components=1

# Stage 2: production dependencies only, from the lock file; install scripts skipped.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Stage 3: runtime. node and the compiled app, owned by root and read-only for the process, run as
# the image's unprivileged `node` user (uid 1000, which the manifests also force). npm, npx,
# corepack and yarn come with the base image and are removed first: nothing here runs them.
FROM ${NODE_IMAGE} AS runtime
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/ ./
USER 1000:1000
# proxy, admin (/healthz /readyz /metrics), webhook
EXPOSE 8080 9901 8443
ENTRYPOINT ["node", "bin/wharf.js"]
CMD ["serve", "--config", "/etc/wharf/config.yaml"]
