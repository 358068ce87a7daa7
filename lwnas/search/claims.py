"""Which trial owns which architecture, enforced by the database: a table beside Optuna's in the study's
storage with primary key (study, arch hash). Two workers that sample the same network at once cannot both
claim it: the second insert fails inside the database, on SQLite and PostgreSQL alike. The same table holds
the search's training slots (keys `#slot0`, `#slot1`, ...), so that workers never train more than asked."""
from __future__ import annotations

import sqlalchemy as sa

_METADATA = sa.MetaData()
CLAIMS = sa.Table(
    "lwnas_arch_claims", _METADATA,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("arch_hash", sa.String(64), primary_key=True),
    sa.Column("trial_number", sa.Integer, nullable=False),
)


def lost_creation_race(err: sa.exc.SQLAlchemyError) -> bool:
    """True for the errors of a worker that created a table (or its first row) just after another one did:
    a duplicate row, or "already exists" (SQLite: OperationalError, PostgreSQL: ProgrammingError)."""
    return isinstance(err, sa.exc.IntegrityError) or "already exists" in str(err)


class ArchClaims:
    def __init__(self, engine: sa.engine.Engine, study: str):
        self.engine, self.study = engine, study
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as err:  # another worker created it between the check and the create
            if not lost_creation_race(err):
                raise

    def claim(self, arch_hash: str, trial_number: int) -> int | None:
        """Claim `arch_hash` for this trial; None on success, else the trial number that owns it."""
        try:
            with self.engine.begin() as connection:
                connection.execute(CLAIMS.insert().values(study=self.study, arch_hash=arch_hash,
                                                          trial_number=trial_number))
            return None
        except sa.exc.IntegrityError:
            with self.engine.connect() as connection:
                return connection.execute(sa.select(CLAIMS.c.trial_number).where(
                    CLAIMS.c.study == self.study, CLAIMS.c.arch_hash == arch_hash)).scalar_one()

    def holders(self, prefix: str) -> dict[str, int]:
        """The claims whose key starts with `prefix`, with the trial number holding each."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(CLAIMS.c.arch_hash, CLAIMS.c.trial_number).where(
                CLAIMS.c.study == self.study, CLAIMS.c.arch_hash.startswith(prefix, autoescape=True)))
            return dict(rows.all())

    def take_over(self, arch_hash: str, dead_owner: int, trial_number: int) -> bool:
        """Move the claim from a failed trial to this one; False if another worker took it first."""
        with self.engine.begin() as connection:
            moved = connection.execute(CLAIMS.update().where(
                CLAIMS.c.study == self.study, CLAIMS.c.arch_hash == arch_hash,
                CLAIMS.c.trial_number == dead_owner).values(trial_number=trial_number))
            return moved.rowcount == 1

    def release(self, arch_hash: str, trial_number: int):
        """Give up this trial's claim (it will not train the architecture after all)."""
        with self.engine.begin() as connection:
            connection.execute(CLAIMS.delete().where(CLAIMS.c.study == self.study, CLAIMS.c.arch_hash == arch_hash,
                                                     CLAIMS.c.trial_number == trial_number))
