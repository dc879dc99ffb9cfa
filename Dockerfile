# syntax=docker/dockerfile:1
# Wharf image: `docker build -t registry.example.com/wharf:$(node -p "require('./package.json').version") .`
# Node.js 24 LTS on Debian 13 slim, pinned to an exact release. For reproducible builds pin the
# digest too (NODE_IMAGE=node:24.21.0-trixie-slim@sha256:...) from `docker buildx imagetools
# inspect node:24.21.0-trixie-slim`; test/deploy checks that the tag stays an exact version.
ARG NODE_IMAGE=node:24.21.0-trixie-slim

# Stage 1: production dependencies only. tsx runs the TypeScript at runtime, so no build step;
# install scripts are skipped (esbuild's binary comes from its platform package).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Stage 2: runtime. Code owned by root and read-only for the process; runs as the image's
# unprivileged `node` user (uid 1000), which the manifests also force with runAsUser.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
USER 1000:1000
# proxy, admin (/healthz /readyz /metrics), webhook
EXPOSE 8080 9901 8443
ENTRYPOINT ["node", "bin/wharf.js"]
CMD ["serve", "--config", "/etc/wharf/config.yaml"]
