# syntax=docker/dockerfile:1
# The production image: the operator built without the `demo` feature, glibc linked statically, on
# scratch, as UID/GID 65532. `make image` builds the same image with no container engine (the same
# scripts/static-binary.sh, user, entrypoint and labels); tests/tests/image.rs checks that they agree.
# Multi-arch: the build stage runs on each target platform (buildx with QEMU), so the script builds for
# that platform's host triple.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN bin="$(scripts/static-binary.sh "" /build)" && cp "$bin" /wufb-operator

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wufb-operator" \
      org.opencontainers.image.description="Declarative expedited Windows quality updates through the Microsoft Graph Windows Update for Business deployment service" \
      org.opencontainers.image.source="https://github.com/wufb-operator/wufb-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /wufb-operator /wufb-operator
USER 65532:65532
ENTRYPOINT ["/wufb-operator"]
