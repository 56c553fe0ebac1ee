# One image for every tlog service (log frontends now; CA and monitor later).
FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/tlog --create-home tlog
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tlog ./tlog
COPY monitor ./monitor
RUN pip install --no-cache-dir . && rm -rf /src
USER tlog
WORKDIR /var/lib/tlog
EXPOSE 3000
ENTRYPOINT ["tlog"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
