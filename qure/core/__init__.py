"""What every domain uses: errors, roles, audit, outbox, clock, jobs, http helpers."""
