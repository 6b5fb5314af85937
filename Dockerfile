# Images for the two services, one target each (Cloud Run runs linux/amd64):
#
#   docker build --platform linux/amd64 --target caller -t caller .
#   docker build --platform linux/amd64 --target called -t called .
#
# The binaries are static (glibc, crt-static) and run on an empty base: no shell, no
# package manager, no libc to patch; only the binary and the CA bundle that rustls'
# native-roots verifier reads (reqwest -> rustls-platform-verifier -> rustls-native-certs).
# glibc's resolver (files + dns) is built into its static library, so DNS works without
# NSS modules. deploy/smoke.sh builds these final stages with Podman and runs them.

# The Rust toolchain image. Debian bookworm, like the machines that run deploy/smoke.sh.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm

# ---- toolchain -------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
ENV CARGO_TERM_COLOR=never
ENV CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
ENV RUSTFLAGS="-C target-feature=+crt-static"

# ---- skeleton: the workspace's manifests with every target's source stubbed -------------
# Its output changes only when a Cargo.toml or Cargo.lock does, so the dependency layer
# below stays cached while only sources change.
FROM toolchain AS skeleton
# Inherited from toolchain already; repeated so that linters see it for this stage's pipe.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY . .
RUN mkdir /skeleton \
 && find . -name Cargo.toml -not -path './target/*' -exec cp --parents {} /skeleton/ \; \
 && cp Cargo.lock /skeleton/ \
 && cargo metadata --no-deps --offline --format-version 1 \
    | grep -o '"src_path":"[^"]*"' | cut -d'"' -f4 | sed 's#^/src/##' \
    | while read -r path; do \
        mkdir -p "/skeleton/$(dirname "$path")" && echo 'fn main() {}' > "/skeleton/$path"; \
      done

# ---- build -----------------------------------------------------------------------------
# The final stages take /out/caller, /out/called and the CA bundle from this stage.
# deploy/smoke.sh replaces it (podman build --build-context build=...) by an image of
# host-built binaries at the same paths, and builds the final stages below unchanged.
FROM toolchain AS build
# 1. Dependencies only (cached until a manifest or the lockfile changes).
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked --bin caller --bin called
# 2. The real sources. Touch them so cargo rebuilds the workspace crates over the stubs.
COPY . .
RUN find . -path ./target -prune -o -type f -exec touch {} + \
 && cargo build --release --locked --bin caller --bin called \
 && mkdir /out \
 && cp "target/$CARGO_BUILD_TARGET/release/caller" "target/$CARGO_BUILD_TARGET/release/called" /out/

# ---- runtime ---------------------------------------------------------------------------
FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENV PORT=8080
EXPOSE 8080
# Unprivileged, numeric (there is no /etc/passwd): the "nonroot" id of distroless images.
USER 65532:65532

FROM runtime AS caller
LABEL org.opencontainers.image.title="invoker caller" \
      org.opencontainers.image.description="Forwards authenticated requests to the called service with a Google-signed ID token."
COPY --from=build /out/caller /caller
ENTRYPOINT ["/caller"]

FROM runtime AS called
LABEL org.opencontainers.image.title="invoker called" \
      org.opencontainers.image.description="Verifies the caller's ID token and stores the request durably."
COPY --from=build /out/called /called
ENTRYPOINT ["/called"]
