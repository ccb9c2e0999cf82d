# syntax=docker/dockerfile:1
# The example reminder scheduler (deploy/examples/scheduler.py) in a small
# Debian image, for deploy/compose.yaml. Build from the repository root:
#   docker build -f deploy/scheduler.Dockerfile -t fieldsync-scheduler .
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-zmq python3-protobuf protobuf-compiler \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10002 scheduler \
 && useradd --uid 10002 --gid 10002 --no-create-home --shell /usr/sbin/nologin scheduler
COPY proto/ /opt/fieldsync/proto/
COPY deploy/examples/scheduler.py /opt/fieldsync/scheduler.py
# The generated code is never committed (deploy/examples/README.md): make it here.
RUN mkdir -p /opt/fieldsync/python \
 && protoc --python_out=/opt/fieldsync/python -I /opt/fieldsync/proto \
      /opt/fieldsync/proto/fieldsync/v1/sync.proto
USER 10002:10002
ENV FIELDSYNC_PROTO_OUT=/opt/fieldsync/python
ENTRYPOINT ["/usr/bin/python3", "/opt/fieldsync/scheduler.py"]
