"""The account API and web console (`rating-engine api`).

`app` (Starlette handlers), `commands` (HTTP requests to account commands, judged by the
core), `store` (SQLite: charges, idempotency answers), `broker` (the Kafka consumers and
producer), `tokens` (hashed bearer tokens), `openapi` (the document), `server` (the command
line and uvicorn), `static/` (the console's page, script and style).
"""
