# PostgreSQL for `make compose-test`: Debian bookworm's package on the debootstrap base, started the way the
# official postgres image starts (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB; data in PGDATA), so the
# `postgres` profile of docker-compose.yml is tested without Docker Hub. Users get the official image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
# No cluster of Debian's own: the entrypoint creates one in PGDATA, on the volume.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p "$PGDATA" /run/postgresql \
    && chown postgres:postgres "$PGDATA" /run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
# As the official image: SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
