#!/usr/bin/env bash
# How much does the repository grow when a 200 MB SQLite database is backed up again after a
# small change? Builds a 2,000,000-row ledger, backs it up, then changes 1 % of rows in two
# patterns (one contiguous range + appends; random rows) and backs up after each.
# Usage: bench/sqlite-dedup.sh   (needs python3; uses target/release/lifeboat)
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${LIFEBOAT_BIN:-target/release/lifeboat}
[ -x "$LB" ] || cargo build --release -p lifeboat
W=$(mktemp -d /tmp/lifeboat-sqlite-dedup.XXXX)
trap 'rm -rf "$W"' EXIT
python3 - "$W/ledger.db" <<'PY'
import random, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table ledger(id integer primary key, account text, amount integer, memo text)")
random.seed(1)
rows = ((f"acct-{random.randrange(100000)}", random.randrange(10**9), "memo " + "x" * random.randrange(40, 120))
        for _ in range(2_000_000))
c.executemany("insert into ledger(account, amount, memo) values (?, ?, ?)", rows)
c.commit()
PY
cat > "$W/lifeboat.toml" <<TOML
[repository]
url = "$W/repo"
[[source]]
name = "ledger"
kind = "sqlite"
path = "$W/ledger.db"
TOML
export LIFEBOAT_PASSWORD=bench LIFEBOAT_CONFIG="$W/lifeboat.toml"
size() { du -sb "$W/repo" | cut -f1; }
"$LB" init -q
echo "database: $(du -h "$W/ledger.db" | cut -f1)"
/usr/bin/time -f "first backup: %e s" "$LB" backup ledger -q; s0=$(size)
python3 -c "import sqlite3; c=sqlite3.connect('$W/ledger.db'); c.execute('update ledger set amount=amount+1 where id between 1000000 and 1010000'); c.execute(\"insert into ledger(account,amount,memo) select account,amount,'new' from ledger where id<=10000\"); c.commit()"
/usr/bin/time -f "second backup (1 %% updated in one range + 1 %% appended): %e s" "$LB" backup ledger -q; s1=$(size)
python3 -c "import sqlite3,random; random.seed(2); c=sqlite3.connect('$W/ledger.db'); c.executemany('update ledger set amount=amount+1 where id=?', [(i,) for i in random.sample(range(1, 2000000), 20000)]); c.commit()"
/usr/bin/time -f "third backup (1 %% updated at random): %e s" "$LB" backup ledger -q; s2=$(size)
echo "repository after first backup: $s0 bytes"
echo "growth, clustered change:      $((s1 - s0)) bytes ($((100 * (s1 - s0) / s0)) % of a full copy)"
echo "growth, random change:         $((s2 - s1)) bytes ($((100 * (s2 - s1) / s0)) % of a full copy)"
