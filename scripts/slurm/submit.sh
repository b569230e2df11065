#!/usr/bin/env bash
# Submit a sharded `cfgen generate` to Slurm: an array of N workers, then a finalize job that runs when they end.
#   scripts/slurm/submit.sh N [sbatch options...] -- <generate options>
#   scripts/slurm/submit.sh 16 --partition=cpu --time=2:00:00 -- --dataset waterbirds --methods cf-tile,f-random
# sbatch options go to both jobs (partition, account, time, --output, ...). The finalize job gets the --dataset,
# --methods, --corpora-root and --source of the generate options. Prints both job ids, and
# `array=<id> finalize=<id>` as its last line. Environment: see the header of scripts/slurm/generate.sbatch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
n=${1:?usage: submit.sh N [sbatch options...] -- <generate options>}
shift
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
sb=()
while (($#)) && [[ $1 != -- ]]; do sb+=("$1"); shift; done
(($#)) && shift
gen=("$@")

# the options finalize needs, in either --opt value or --opt=value form
fin=()
for ((i = 0; i < ${#gen[@]}; i++)); do
  a=${gen[i]}
  case $a in
    --dataset=*|--methods=*|--corpora-root=*|--source=*) fin+=("$a") ;;
    --dataset|--methods|--corpora-root|--source) fin+=("$a" "${gen[i+1]:-}"); i=$((i + 1)) ;;
  esac
done

export CFGEN_SHARD_COUNT=$n CFGEN_DIR=${CFGEN_DIR:-$repo}
array=$(sbatch --parsable --array="0-$((n - 1))" --export=ALL "${sb[@]}" "$here/generate.sbatch" "${gen[@]}")
array=${array%%;*}
final=$(sbatch --parsable --dependency="afterany:$array" --kill-on-invalid-dep=yes --export=ALL "${sb[@]}" "$here/finalize.sbatch" "${fin[@]}")
final=${final%%;*}
echo "generate: job array $array (tasks 0-$((n - 1))); finalize: job $final (after every task ends)" >&2
echo "array=$array finalize=$final"
