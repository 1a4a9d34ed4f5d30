"""Engine, session factory, declarative base and the per-request unit of work."""

from __future__ import annotations

import asyncio
import enum
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Protocol, cast

import asyncpg
import orjson
from fastapi import Depends, Request
from sqlalchemy import (
    ClauseElement,
    Column,
    DateTime,
    Executable,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    column,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from tradecast.errors import AppError, DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always hands back aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """``NUMERIC(p, s)`` on PostgreSQL; on SQLite, which has no decimal type and would
    round-trip through a binary float, the exact decimal text."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format(Decimal(value), "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value) if not isinstance(value, Decimal) else value


def Price() -> ExactDecimal:
    """Prices and sizes: ``NUMERIC(20, 8)``."""
    return ExactDecimal(20, 8)


def Amount() -> ExactDecimal:
    """Notional and exact running sums (price × size): ``NUMERIC(38, 16)``."""
    return ExactDecimal(38, 16)


def Money() -> ExactDecimal:
    """Settled money: ``NUMERIC(18, 2)``."""
    return ExactDecimal(18, 2)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


POOL_TIMEOUT_S = 5


class Database:
    """One engine and session factory per process, owned by the app's lifespan."""

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 20, driver_pool_size: int = 10
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            # A fixed pool, no overflow: overflow connections are closed as soon as they
            # are returned, so under sustained load each request past the pool size paid
            # for a new connection (and PostgreSQL for a new backend). A request that
            # finds every connection busy waits for one, at most POOL_TIMEOUT_S, then
            # answers 503.
            #
            # No pre-ping: on asyncpg it is three round trips (BEGIN, ping, ROLLBACK) per
            # checkout, more than a poll's own work. A connection the server dropped
            # fails its first statement instead; SQLAlchemy then recognises the
            # disconnect and invalidates the whole pool, so the request answers 503
            # (errors.py) and the next ones get fresh connections.
            options.update(
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=POOL_TIMEOUT_S,
                pool_recycle=1800,
            )
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # The same pool, each connection in autocommit while it is checked out: for a
        # unit of work that is one atomic statement and needs no BEGIN or COMMIT. Not on
        # SQLite, whose every transaction starts with our BEGIN IMMEDIATE (below), which
        # an autocommit connection would never end.
        self.autocommit: AsyncEngine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # PostgreSQL: asyncpg's own pool, for the statements devices run all day.
        self._driver_pool_size = driver_pool_size
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_pool_opening = asyncio.Lock()

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """PostgreSQL: a connection of asyncpg's own pool, in autocommit.

        For the device paths that run thousands of times a second (the poll, the
        signing-key lookup, the execution reports in a transaction of their own,
        ``statements_unit_of_work``): a statement compiled once
        (``DriverStatement``) costs one round trip and no SQLAlchemy layer. Like
        the engine's pool it is fixed in size, and a request that finds it
        exhausted for ``POOL_TIMEOUT_S`` answers 503. A connection the server
        dropped is replaced on its next checkout; the statement that met the drop
        raises asyncpg's connection error, which answers 503 too (``errors.py``).
        """
        pool = self._driver_pool or await self._open_driver_pool()
        try:
            connection = await pool.acquire(timeout=POOL_TIMEOUT_S)
        except TimeoutError as exc:
            raise DatabaseUnavailable("The database is busy; retry shortly") from exc
        try:
            yield connection
        finally:
            await pool.release(connection)

    async def _open_driver_pool(self) -> asyncpg.Pool:
        async with self._driver_pool_opening:
            if self._driver_pool is None:
                dsn = make_url(self.url).set(drivername="postgresql")
                self._driver_pool = await asyncpg.create_pool(
                    dsn.render_as_string(hide_password=False),
                    min_size=0,
                    max_size=self._driver_pool_size,
                    max_inactive_connection_lifetime=1800,
                    # The device statements are prepared once per connection; planned
                    # afresh for each execution they spent nearly as long in the planner
                    # as running (`python -m bench.explain_poll` prints both plans).
                    server_settings={"plan_cache_mode": "force_generic_plan"},
                    reset=_nothing_to_reset,
                    init=_learn_array_types,
                )
            return self._driver_pool

    async def dispose(self) -> None:
        if self._driver_pool is not None:
            await self._driver_pool.close()
            self._driver_pool = None
        await self.engine.dispose()


# The array types the device statements bind (the woken and batched polls' device,
# owner and limit lists) are not among asyncpg's built-in codecs: the first
# statement to bind one on a connection first looks them up in the catalog, three
# round trips and 7-41 ms measured, which landed on whichever request ran it, a
# woken long poll as often as any (docs/PERFORMANCE.md, "What is next" 6). Each
# pooled connection looks them up as it opens instead, where the connection's own
# set-up is paid anyway.
_ARRAY_TYPES = "SELECT $1::uuid[], $2::integer[]"


async def _learn_array_types(connection: asyncpg.Connection) -> None:
    await connection.prepare(_ARRAY_TYPES)


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """The device statements change no session state (single statements in
    autocommit, or a report's transaction, committed or rolled back by its unit of
    work), so a connection goes back to the pool as it is: asyncpg's
    default reset (``RESET ALL``, ``UNLISTEN *``, ...) is a round trip per checkout.
    asyncpg still rolls back a transaction left open, whatever ``reset`` does."""


_ASYNCPG = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class DriverStatement:
    """A Core statement compiled once for asyncpg, to run on ``driver_connection``.

    The SQL is SQLAlchemy's own rendering of the statement, so it stays defined
    once, next to its ORM neighbours; only the execution skips SQLAlchemy.
    Values are passed by bind-parameter name; constants the statement carries
    (an enum value, say) are filled in from the statement itself.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        compiled = cast(SQLCompiler, statement.compile(dialect=_ASYNCPG))
        self.sql = compiled.string
        names: Sequence[str] = compiled.positiontup or ()
        # The column types' own conversions on the way in (a JSON document to its
        # text, say), as SQLAlchemy would apply them; most types need none.
        processors = cast(Mapping[str, Callable[[Any], Any]], compiled._bind_processors)
        self._slots = [(name, processors.get(name)) for name in names]
        self.names = frozenset(names)
        self._constants = {
            name: _constant(processors.get(name), value)
            for name, value in compiled.params.items()
            if value is not None
        }

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [
            _processed(processor, values[name]) if name in values else self._constants[name]
            for name, processor in self._slots
        ]

    async def fetch(
        self, connection: asyncpg.Connection, values: Mapping[str, Any]
    ) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await connection.fetch(self.sql, *self.arguments(values))
        return rows


class Statements(Protocol):
    """Runs ``DriverStatement``s in a unit of work, on whichever database this is.

    For the device report path, written once against Core statements: on
    PostgreSQL each runs as one prepared statement on a connection of asyncpg's
    own pool, on SQLite through the request's SQLAlchemy session. Rows come back
    as mappings by column name. ``values`` may hold more than a statement's
    parameters: each statement takes its own.
    """

    is_sqlite: bool

    async def rows(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """Run a statement that returns rows (a query, or a write with RETURNING)."""
        ...

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        """Run a write that returns no rows."""
        ...


class DriverStatements:
    """``Statements`` on an asyncpg connection (PostgreSQL)."""

    is_sqlite = False

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def rows(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        # asyncpg's records are read by column name like mappings.
        return cast(Sequence[Mapping[str, Any]], await statement.fetch(self.connection, values))

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        await self.connection.execute(statement.sql, *statement.arguments(values))


class SessionStatements:
    """``Statements`` through a SQLAlchemy session (SQLite)."""

    is_sqlite = True

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rows(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        result = await self.session.execute(*self._call(statement, values))
        return cast(Sequence[Mapping[str, Any]], result.mappings().all())

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        await self.session.execute(*self._call(statement, values))

    @staticmethod
    def _call(
        statement: DriverStatement, values: Mapping[str, Any]
    ) -> tuple[Executable, dict[str, Any]]:
        # Only the statement's own parameters: SQLAlchemy would take any other value
        # named like a column of an UPDATE's table as one more column to set.
        own = {name: value for name, value in values.items() if name in statement.names}
        return cast(Executable, statement.statement), own


def typed(table_column: Column[Any]) -> ColumnClause[Any]:
    """A table's column as a free-standing column of the same name and type.

    A foreign key column declared without a type takes its target's once every
    table is known; every key it can point to here is a UUID (``UUIDPrimaryKey``).
    """
    type_: TypeEngine[Any] = table_column.type
    if isinstance(type_, NullType) and table_column.foreign_keys:
        type_ = Uuid()
    return column(table_column.name, type_)


def json_rows(name: str, columns: Sequence[ColumnClause[Any]], param: str) -> TableValuedAlias:
    """PostgreSQL: the JSON array bound to ``param`` as a table ``name`` of ``columns``.

    Many rows in one bind parameter, for statements that work on a batch
    (``jsonb_to_recordset``): each value is read with its column type's own input
    function, so a Decimal sent as its text stays exact. ``json_rows_value``
    gives the parameter's value.
    """
    rows = func.jsonb_to_recordset(sql_cast(bindparam(param, type_=Text()), JSONB))
    return rows.table_valued(*columns).render_derived(name=name, with_types=True)


def json_table_rows(table: Table, name: str, param: str) -> TableValuedAlias:
    """``json_rows`` with every column of ``table``, its rows made by ``json_row``."""
    return json_rows(name, [typed(table_column) for table_column in table.columns], param)


@functools.cache
def column_names(table: Table) -> tuple[tuple[str, str], ...]:
    """Each of ``table``'s columns as (name, attribute key), read once: walking a
    table's columns costs more than the rows they describe, on paths that make
    a row per request."""
    return tuple((table_column.name, table_column.key) for table_column in table.columns)


def json_row(table: Table, value: object) -> dict[str, Any]:
    """``value``'s attributes named like ``table``'s columns, as one of
    ``json_table_rows``' rows."""
    return {name: getattr(value, key) for name, key in column_names(table)}


def insert_rows(table: Table, rows: TableValuedAlias, *order_by: Any) -> postgresql.Insert:
    """PostgreSQL: an insert into ``table`` of every row of ``rows``
    (``json_table_rows``), in ``order_by``'s order if given (the order its rows,
    and their locks, are taken in)."""
    names = [table_column.name for table_column in table.columns]
    chosen = select(*(rows.c[name] for name in names)).order_by(*order_by)
    return postgresql.insert(table).from_select(names, chosen)


def _json_default(value: object) -> str:
    # asyncpg's UUIDs are a class of its own, which orjson does not know.
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON row value")


def json_rows_value(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (column name → value) as the text ``json_rows`` reads: UUIDs, aware
    datetimes, enums and Decimals (as their exact text) as JSON."""
    # A column's name may be a subclass of str (``quoted_name``), which orjson takes
    # as a key only when told to.
    return orjson.dumps(rows, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _processed(processor: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if processor is None or value is None else processor(value)


def _constant(processor: Callable[[Any], Any] | None, value: Any) -> Any:
    if processor is None and isinstance(value, enum.Enum):
        return value.value
    return _processed(processor, value)


class RecordView:
    """An asyncpg row read by attribute, as SQLAlchemy's rows are."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Foreign keys on, WAL, and ``BEGIN IMMEDIATE`` for every transaction.

    SQLite ignores ``SELECT ... FOR UPDATE``; taking the write lock when the
    transaction begins makes the row-lock guarded invariants hold here too, at
    the price of serialising writers, which the development database can afford.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# Dependencies are ``async def`` even when they do not await: FastAPI runs plain
# functions in a thread pool, which costs more per request than their bodies.
async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


_AFTER_COMMIT = "tradecast.after_commit"


def after_commit(request: Request, callback: Callable[[], None]) -> None:
    """Run ``callback`` once this request's unit of work has committed (never on rollback).

    For effects that must not be seen before the data is: waking long polls,
    handing events to the outbox dispatcher.
    """
    request.scope.setdefault(_AFTER_COMMIT, []).append(callback)


async def unit_of_work(
    request: Request, db: Annotated[Database, Depends(database)]
) -> AsyncIterator[AsyncSession]:
    """One session per request, committed once before the response is sent.

    Declared with ``scope="function"`` so that the commit runs when the
    endpoint returns, not after the response has left: a failed commit must
    reach the client as an error, never as a 2xx for work that was lost.
    """
    async with db.sessionmaker() as session:
        async with _committed(request, session.commit, session.rollback):
            yield session


@asynccontextmanager
async def _committed(
    request: Request | None,
    commit: Callable[[], Awaitable[None]],
    rollback: Callable[[], Awaitable[None]],
) -> AsyncIterator[None]:
    """Commit when the block ends normally, or with an error that keeps its
    changes; roll back otherwise. Callbacks queued by ``after_commit`` run after
    the commit only."""
    try:
        yield
    except AppError as error:
        if error.keeps_changes:
            await commit()
        else:
            await rollback()
        raise
    except BaseException:
        await rollback()
        raise
    else:
        await commit()
        for callback in request.scope.pop(_AFTER_COMMIT, ()) if request is not None else ():
            callback()


DbSession = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]


@asynccontextmanager
async def statements_transaction(
    db: Database, request: Request | None = None
) -> AsyncIterator[Statements]:
    """A device report's unit of work, committed when the block ends as
    ``unit_of_work``'s is: on PostgreSQL one transaction on a connection of
    asyncpg's own pool, on SQLite a session of its own."""
    if db.is_sqlite:
        async with db.sessionmaker() as session:
            async with _committed(request, session.commit, session.rollback):
                yield SessionStatements(session)
        return
    async with db.driver_connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        async with _committed(request, transaction.commit, transaction.rollback):
            yield DriverStatements(connection)


async def statements_unit_of_work(
    request: Request, db: Annotated[Database, Depends(database)]
) -> AsyncIterator[Statements]:
    """The unit of work of a device report, committed once before the response
    is sent (``statements_transaction``)."""
    async with statements_transaction(db, request) as statements:
        yield statements


DbStatements = Annotated[Statements, Depends(statements_unit_of_work, scope="function")]
