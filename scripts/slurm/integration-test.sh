#!/usr/bin/env bash
# Integration test of the shipped Slurm job files on a real (single-node) Slurm cluster: start one
# (scripts/slurm/local-cluster.sh), build a small synth-waterbirds, submit scripts/slurm/submit.sh with a 4-task array,
# wait for the finalize job, and compare the corpora with a single-process `generate` of the same options: every file
# byte-identical, the same corpus ids. Every daemon it started is stopped on exit, whatever happens.
#   scripts/slurm/integration-test.sh [state-dir]      (make test-slurm)
# Last line, and exit status: `slurm integration: passed` (0), `slurm integration: FAILED: <why>` (1), or
# `slurm integration: could not start the cluster: <why>` (3). Needs root, Debian's slurm-wlm and munge.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
given=${1:+yes}
state=$(realpath -m "${1:-$(mktemp -d /tmp/cfgen-slurm-XXXXXX)}")
mkdir -p "$state/logs"
TASKS=4
METHODS=cf-grey,f-random
GEN=(--dataset synth-waterbirds --methods "$METHODS" --shard-size 16)
array='' final=''
t0=$(date +%s) t_slurm=0

cleanup() {
  if [[ -n $array || -n $final ]]; then scancel $array $final >/dev/null 2>&1 || true; fi
  "$here/local-cluster.sh" stop "$state/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "slurm integration: FAILED: $* (logs in $state/logs)"; exit 1; }
cannot() { echo "slurm integration: could not start the cluster: $*"; exit 3; }

[[ $(id -u) == 0 ]] || cannot "needs root (slurmd runs jobs as any user)"
for b in munged slurmctld slurmd sbatch squeue scontrol; do command -v "$b" >/dev/null || cannot "$b not found (apt-get install slurm-wlm munge)"; done
if ! out=$("$here/local-cluster.sh" start "$state/cluster" 2>"$state/logs/cluster-start.err"); then
  cannot "$(tail -1 "$state/logs/cluster-start.err" 2>/dev/null || echo 'local-cluster.sh start failed') (logs in $state/cluster/log)"
fi
eval "$out"
[[ -n ${SLURM_CONF:-} ]] || cannot "local-cluster.sh printed no SLURM_CONF"
echo "slurm: cluster up ($SLURM_CONF)" >&2

cd "$repo"
export CFGEN_DATA_ROOT=$state/data CFGEN_CORPORA_ROOT=$state/corpora CFGEN_DIR=$repo
# a small dataset (96 train images: 6 shards of 16 per corpus, so the 4 workers own 2, 2, 1 and 1)
npx --no-install tsx cfgen.ts dataset synth-waterbirds --train 96 --val 8 --test 8 >"$state/logs/dataset.log" 2>&1 || fail "building the dataset (see dataset.log)"

# the reference: one process, same options, on a copy of the same source manifest
mkdir -p "$state/single/synth-waterbirds"
cp -r "$state/corpora/synth-waterbirds/source" "$state/single/synth-waterbirds/"
npx --no-install tsx cfgen.ts generate --source "$state/single/synth-waterbirds/source" --methods "$METHODS" --shard-size 16 --quiet \
  >"$state/logs/single.log" 2>&1 || fail "the single-process run (see single.log)"

# the cluster run: 1 CPU per task and oversubscribed, so all 4 tasks run at once and race on the shared folder
t_submit=$SECONDS
ids=$("$here/submit.sh" "$TASKS" --cpus-per-task=1 --oversubscribe --output="$state/logs/%x-%j.out" -- "${GEN[@]}" 2>"$state/logs/submit.err") \
  || fail "sbatch: $(tail -1 "$state/logs/submit.err")"
ids=$(tail -1 <<<"$ids")
array=${ids#array=}; array=${array%% *}; final=${ids##*finalize=}
echo "slurm: array job $array ($TASKS tasks), finalize job $final" >&2

job_state() { scontrol show job "$1" -o 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | head -1 | cut -d= -f2; }
deadline=$((SECONDS + ${CFGEN_SLURM_TIMEOUT_S:-300}))
while :; do
  s=$(job_state "$final")
  case $s in
    COMPLETED) break ;;
    FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) fail "the finalize job ended $s" ;;
  esac
  ((SECONDS < deadline)) || fail "the finalize job did not end within ${CFGEN_SLURM_TIMEOUT_S:-300} s (state ${s:-unknown})"
  sleep 1
done
t_slurm=$((SECONDS - t_submit))
tasks=$(scontrol show job "$array" -o 2>/dev/null | grep -oE 'JobState=[A-Z_]+ .*ExitCode=[0-9:]+' | sed -E 's/JobState=([A-Z_]+).*ExitCode=([0-9:]+)/\1 \2/' | sort | uniq -c | tr -s ' ' | paste -sd, -)
array_done=false
grep -q "COMPLETED 0:0" <<<"$tasks" && ! grep -qvE "COMPLETED 0:0" <<<"$(tr ',' '\n' <<<"$tasks" | sed -E 's/^ *[0-9]+ //')" && array_done=true
$array_done || fail "array tasks: $tasks"

for m in ${METHODS//,/ }; do
  a=$(sed -nE 's/^ *"corpus_id": "([0-9a-f]+)".*/\1/p' "$state/corpora/synth-waterbirds/$m/corpus.json" 2>/dev/null)
  b=$(sed -nE 's/^ *"corpus_id": "([0-9a-f]+)".*/\1/p' "$state/single/synth-waterbirds/$m/corpus.json" 2>/dev/null)
  [[ -n $a ]] || fail "$m: no corpus.json after the finalize job"
  [[ $a == "$b" ]] || fail "$m: corpus id ${a:0:16} on Slurm, ${b:0:16} from one process"
  if ! diff <(cd "$state/corpora/synth-waterbirds/$m" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
            <(cd "$state/single/synth-waterbirds/$m" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$state/logs/$m.diff"; then
    fail "$m: files differ from the single-process corpus (see $m.diff)"
  fi
  echo "slurm: $m corpus id $a, identical to one process" >&2
done
npx --no-install tsx cfgen.ts verify --corpora-root "$state/corpora" --dataset synth-waterbirds --methods "$METHODS" >"$state/logs/verify.log" 2>&1 \
  || fail "verify (see verify.log)"
echo "slurm: $TASKS tasks + finalize took ${t_slurm} s from submit to finalized ($(( $(date +%s) - t0 )) s in all); tasks:$tasks" >&2
trap - EXIT
cleanup
# a state folder of our own goes once the test passed; one given on the command line is kept for inspection
if [[ -z $given ]]; then rm -rf "$state"; else rm -rf "$state/data" "$state/corpora" "$state/single"; fi
echo "slurm integration: passed"
