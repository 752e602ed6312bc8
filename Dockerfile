# syntax=docker/dockerfile:1
#
#   docker build -t sidecar-exporter:0.1.0 .
#
# Runtime base: node:*-bookworm-slim rather than gcr.io/distroless/nodejs20-debian12. Distroless is about 70 MB
# smaller and has no shell, but it has no /usr/bin/env either, so the `sidecar-exporter` command below (a script
# with a `#!/usr/bin/env node` line) could not exist, and `kubectl exec … -- sidecar-exporter check`, the
# documented way to debug checks from inside the pod, would not work. The build stages use the same image, so
# the compiled code runs on exactly the Node it was built with. npm, corepack and yarn are removed from the
# runtime stage: that saves no space (they stay in the base layer) but leaves no package manager for scanners to
# flag or an intruder to use.
ARG NODE_IMAGE=node:20.20-bookworm-slim

# ---- build: every dependency, bundle src/ into dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# No install scripts: nothing in the tree needs one to build (esbuild's binary comes in its platform's optional
# package, which its install script only checks).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.ts ./scripts/
COPY src ./src
# scripts/build.ts: src/cli.ts bundled by esbuild into minified ESM chunks with source maps; the CLI loads what it
# needs after the health server listens from chunks of their own, so a cold start reads little before it does.
RUN npm run build && chmod 0755 dist/cli.js

# ---- prod-deps: production dependencies only, installed from the lock file on their own ----
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
ARG NODE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sidecar-exporter" \
      org.opencontainers.image.description="Prometheus metrics and aggregated health for the systems around a Kubernetes operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"

RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*

WORKDIR /app
# protos/ and package.json sit beside dist/: the code finds the package's root once, as the directory above dist/
# whose package.json names this package (src/package-root.ts), and reads the version and the .proto files from
# there. The bundle holds every dependency but pino-pretty (the console log format loads it by name, from
# node_modules) and re2js (required by name when the configuration has a pattern), and CommonJS libraries in it
# may still require their optional parts by name; the production node_modules are kept for those. Everything is
# owned by root and read-only to the process.
COPY package.json ./
COPY protos ./protos
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN ln -s /app/dist/cli.js /usr/local/bin/sidecar-exporter

# The process writes nothing to disk; HOME points at /tmp (an emptyDir in Kubernetes) for any library that
# looks there. Source maps turn stack traces into src/*.ts lines.
ENV NODE_ENV=production \
    HOME=/tmp \
    NODE_OPTIONS=--enable-source-maps

# Numeric, so the kubelet can enforce runAsNonRoot; 65532 is the conventional "nonroot" of operator images.
USER 65532:65532
# metrics, health, gRPC health, HTTPS metrics (metrics.secure)
EXPOSE 8080 8081 8082 8443
# No HEALTHCHECK: the kubelet probes /healthz and /readyz.
# V8 heap sizing, measured with bench/memory.ts (the 50k-series workload with 1,000 checks, 90 s after it is
# complete): with V8's defaults (semi-spaces up to 16 MiB, the old generation let grow several times over between
# full collections) RSS sits at 185-210 MiB with peaks of 225-270 MiB, above half the manifest's 256Mi limit. A
# 4 MiB semi-space and a 1.3x growing factor hold it at about 158 MiB with peaks of 166-173 MiB, for one to two
# points more of a core. (--optimize-for-size gets to 145 MiB but doubles the CPU.) --heap-growing-percent is not
# allowed in NODE_OPTIONS, so both flags are given here.
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=30", "dist/cli.js"]
