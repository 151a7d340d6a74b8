"""What every domain uses: errors, roles, audit, outbox, clock, jobs, http helpers.

Core imports no domain, and each of its modules imports only what stands below it
(`tests/core/test_imports.py` holds both rules):

    http  views  templating  forms  pdf      the edge: request hooks, errors, pages
    audit                                    record() writes an outbox row, asks for the relay
    tasks                                    the relay job (also periodic), schedule_relay
    outbox                jobs               relay, chain, verify | RQ, the job registry, ticker
    models  db  clock  errors  roles  text  money  phone  pagination  schemas
    -------------------------------------------------------------------------
    qure.extensions: db, redis_store, mongo (imports nothing of qure)

Domains stand above core. They declare their jobs in their own `tasks.py` with
`jobs.job` / `jobs.periodic`; `create_app` imports those modules, core never does.
"""
