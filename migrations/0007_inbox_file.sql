-- The inbox moves to its own file (receiver/storage/inbox_file.py): the acknowledgement path
-- appends there, the fold process writes here, and the two never wait for one write lock.
--
-- How far the fold has got in the inbox file: updated in the same transaction that stores the
-- events of the rows up to `inbox_seq`, so a row is folded exactly once whatever stops the
-- process. The writer deletes rows from the inbox file only once the fold is past them.
CREATE TABLE fold_progress (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    inbox_seq  INTEGER NOT NULL
);
INSERT INTO fold_progress (id, inbox_seq) VALUES (1, 0);

-- The `inbox` table of migration 0005 stays, as a parking place: rows in it (written before
-- this migration, or parked by a backup copy) are moved into the inbox file at start.
-- `fold_rejects.seq` is now the row's seq in the inbox file.
