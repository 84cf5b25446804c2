# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies, then keep only what runs.
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY lib ./lib
COPY routes ./routes
RUN npm run build && npm prune --omit=dev

# Run: compiled JS, production dependencies, the migrations; as the unprivileged "node" user.
FROM node:22-slim
ENV NODE_ENV=production \
    PLT_SERVER_HOSTNAME=0.0.0.0 \
    PORT=3042
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json platformatic.json ./
COPY --chown=node:node migrations ./migrations
# without DATABASE_URL the embedded PostgreSQL keeps its data here: mount a volume on it
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3042
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3042)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/lib/server.js"]
