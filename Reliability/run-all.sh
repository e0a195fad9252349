#!/usr/bin/env bash
# The whole reliability suite in one command (docs/reliability.md). Needs root (loop mounts), gcc, python3,
# xfsprogs, slowhttptest, curl, nats-server, and `pip install h11`.
#   Reliability/run-all.sh          full: 100 crash rounds, 20 power cuts, faults at 8 positions, 10 min of fuzzing per target
#   Reliability/run-all.sh --short  what CI runs
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=${1:-}
swift build --product spool >/dev/null
if [ "$SHORT" = "--short" ]; then CRASH=15; CUTS=3; POS=3; FUZZ=60; KEYFUZZ=15; SLOW=8; else CRASH=100; CUTS=20; POS=8; FUZZ=600; KEYFUZZ=600; SLOW=12; fi
status=0
step() { echo "== $*"; "$@" || { rc=$?; [ $rc -eq 77 ] && echo "**** SKIPPED: $1 ****" || status=1; }; }
step python3 Reliability/crashloop.py --rounds $CRASH
step python3 Reliability/powercut.py --rounds $CUTS
step python3 Reliability/powercut.py --rounds 3 --control
step python3 Reliability/syscallfaults.py --positions $POS
step python3 Reliability/routes.py --webhooks $([ "$SHORT" = "--short" ] && echo 1000 || echo 10000)
step python3 Reliability/fulldisk.py
step bash -c "swift build -c release --product spool >/dev/null && python3 Reliability/memory.py --webhooks $([ "$SHORT" = "--short" ] && echo 100000 || echo 1000000)"
step python3 Reliability/hostile_http.py
step python3 Reliability/slowclients.py --seconds $SLOW
step swift test --filter 'ProcessTests|ServeTests|ConsumerTests|IngressFaultTests|SpoolProtocolTests|SpoolKeyTests'
step Fuzz/run.sh $FUZZ http
step Fuzz/run.sh $KEYFUZZ keys extract
echo "reliability suite: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
