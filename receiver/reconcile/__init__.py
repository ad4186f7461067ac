"""Reconciliation with Tencent's own records (issue 15, docs/reconciliation.md).

CSS gives up on a callback after about 12 minutes; Tencent keeps its own records of every push
(DescribeLiveStreamEventList), of what is live now (DescribeLiveStreamOnlineList) and of
main/backup pushes (DescribeBackupStreamList). This package compares our history with them:
`windows` plans the queries, `sweep` reads the records, `stored` reads our push sessions (on
either engine), `matching` pairs them, `bodies` rebuilds the missing begins and ends, `submit`
hands those to storage the way callbacks go (the engine's intake, then events and outbox), `run`
is one reconciliation of a window, `live` corrects stream state from the online list, `backup`
tells main from backup pushes, `scheduler` runs rounds in the service, and `rounds` decides
which replica runs one (on PostgreSQL, one of several).
"""
