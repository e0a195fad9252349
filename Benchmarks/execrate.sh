#!/bin/bash
# items/s of consume --exec true --drain --concurrency 4 over 2000 items, for a spool binary and its testkit
bin=$1; tk=$2; d=$(mktemp -d)/s
$tk fill $d e 2000 512 >/dev/null
s=$(date +%s.%N); $bin --dir $d consume --exec true --drain --concurrency 4 2>/dev/null; e=$(date +%s.%N)
echo "scale=1; 2000/($e-$s)" | bc
