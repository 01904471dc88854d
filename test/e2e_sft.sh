#!/usr/bin/env bash
# Instruction tuning end to end (docs/SFT.md): `tracellm train --sft --init RUN` starts from a
# pretrained checkpoint and refuses what it cannot start from (another tokenizer, shards without a
# loss mask, a shape option); tokens outside the loss mask get exactly zero gradient through the
# whole CLI path (changing them leaves the trained model bit-identical) while --loss-on-all trains
# on them; the SFT defaults apply; an interrupted SFT run resumes bit-identically; and on the
# synthetic corpus `sft data` -> `shards --text` -> `train --sft --sft-eval` -> `sft score` runs
# and logs the instruction-following score.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
if [ ! -x "$PY" ]; then skip e2e_sft "needs /usr/bin/python3 to write test shards"; done_tests; fi
if ! $TRACELLM sft --help >/dev/null 2>&1; then skip e2e_sft "tracellm sft is not built"; done_tests; fi
cd "$TMP"

# mkshard PATH FINGERPRINT N_TOKENS SEED MODE (vocab 64, tokenizer/shard.h format), MODE:
#   plain  no mask
#   rows   rows of T=32 tokens alternate: even rows are "prompts" (mask 0), odd rows "answers"
#          (mask 1 except their first token). With --batch 4 --seq-len 32 every row is one sequence,
#          so an even row's tokens are inputs only to predictions whose targets are all masked.
#   rows2  the same odd rows, different even rows (SEED + 1000 draws them)
mkshard() {
  "$PY" - "$@" <<'EOF'
import random, struct, sys, zlib
path, fp, n, seed, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r, r2 = random.Random(seed), random.Random(seed + 1000)
T = 32
toks, mask = [], []
t = 0
for j in range(n):
    row, p = j // T, j % T
    t = (5 * t + 3) % 61 if p else r.randrange(61)            # learnable answers
    prompt = row % 2 == 0
    if mode == "rows2" and prompt: toks.append(r2.randrange(61))
    else: toks.append(t)
    mask.append(0 if prompt or p == 0 else 1)
docs = list(range(0, n, T))
tb = struct.pack(f"<{n}H", *toks)
mb = bytes(mask) if mode != "plain" else b""
db = struct.pack(f"<{len(docs)}Q", *docs)
crc = zlib.crc32(tb + mb + db)
hdr = b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, 64, n, len(docs), 0 if mode == "plain" else 1, crc, fp) + bytes(16)
open(path, "wb").write(hdr + tb + mb + db)
EOF
}
N=$((128 * 6 + 1))   # six batches of 4x32 (+1 target)
mkshard plain.bin 77 "$N" 1 plain
mkshard rows.bin 77 "$N" 2 rows
mkshard rows2.bin 77 "$N" 2 rows2
mkshard other.bin 99 "$N" 2 rows
check sft_shards_differ_in_prompts_only bash -c "! cmp -s rows.bin rows2.bin"

TINY=(--batch 4 --threads 1 --print-every 0)
logcore() { sed -E 's/,"tokens_per_s":[0-9.e+-]+//' "$1"; }
check sft_pretrain $TRACELLM train --data plain.bin --out pre --layers 2 --heads 2 --embd 32 --seq-len 32 "${TINY[@]}" --steps 3 --lr 1e-3

# ---- what --init refuses ----
expect_fail sft_needs_init "needs --init" $TRACELLM train --sft --data rows.bin --out x "${TINY[@]}"
expect_fail sft_init_needs_sft "applies to --sft" $TRACELLM train --init pre --data rows.bin --out x "${TINY[@]}"
expect_fail sft_tokenizer_mismatch "tokenizer mismatch.*pre/model.bin" $TRACELLM train --sft --init pre --data other.bin --out x "${TINY[@]}"
expect_fail sft_missing_mask "carries no loss mask" $TRACELLM train --sft --init pre --data plain.bin --out x "${TINY[@]}"
expect_fail sft_shape_option "shape comes from its checkpoint" $TRACELLM train --sft --init pre --data rows.bin --out x --layers 4 "${TINY[@]}"
expect_fail sft_init_missing "no pretrained checkpoint|No such file" $TRACELLM train --sft --init nowhere --data rows.bin --out x "${TINY[@]}"
expect_fail sft_context_too_long "exceeds the context" $TRACELLM train --sft --init pre --data rows.bin --out x --seq-len 64 "${TINY[@]}"
expect_fail sft_eval_needs_tokenizer "needs --tokenizer" $TRACELLM train --sft --init pre --data rows.bin --out x --sft-eval g.jsonl "${TINY[@]}"
check sft_refusals_wrote_nothing test ! -e x/model.bin
check sft_no_mask_with_loss_on_all $TRACELLM train --sft --init pre --data plain.bin --out all_plain --steps 2 --loss-on-all "${TINY[@]}"

# ---- the loss mask through the CLI: masked tokens do not move the weights at all ----
S=(--sft --init pre --steps 4 --lr 1e-3 "${TINY[@]}")
check sft_masked_a $TRACELLM train "${S[@]}" --data rows.bin --out ma
check sft_masked_b $TRACELLM train "${S[@]}" --data rows2.bin --out mb
check sft_masked_tokens_zero_gradient cmp ma/model.bin mb/model.bin
check sft_masked_same_optimizer cmp ma/optim.bin mb/optim.bin
check sft_masked_same_log cmp <(logcore ma/log.jsonl) <(logcore mb/log.jsonl)
check sft_pretrained_untouched bash -c "! cmp -s ma/model.bin pre/model.bin"
check sft_all_a $TRACELLM train "${S[@]}" --data rows.bin --out aa --loss-on-all
check sft_all_b $TRACELLM train "${S[@]}" --data rows2.bin --out ab --loss-on-all
check sft_loss_on_all_sees_prompts bash -c "! cmp -s aa/model.bin ab/model.bin"
check sft_loss_on_all_differs bash -c "! cmp -s aa/model.bin ma/model.bin"
# the masked loss is averaged over answer tokens only: (31 of every 64 tokens are trained)
check sft_step0_fresh_optimizer "$PY" -c "
import json, struct
rows = [json.loads(l) for l in open('ma/log.jsonl')]
assert [r['step'] for r in rows] == [1, 2, 3, 4], rows
h = open('ma/model.bin', 'rb').read(128)
assert struct.unpack_from('<Q', h, 48)[0] == 4, 'the SFT step counter starts at 0'
"

# ---- SFT defaults: 4 epochs (6 batches each), lr 3e-4 cosine, the checkpoint's context ----
check sft_defaults $TRACELLM train --sft --init pre --data rows.bin --out def "${TINY[@]}"
check sft_defaults_schedule "$PY" -c "
import json
rows = [json.loads(l) for l in open('def/log.jsonl')]
assert len(rows) == 24, len(rows)
peak = max(r['lr'] for r in rows)
assert abs(peak - 3e-4) < 1e-9 and rows[-1]['lr'] < rows[len(rows) // 2]['lr'] < peak + 1e-12, [r['lr'] for r in rows]
"

# ---- resume of an SFT run is bit-identical ----
check sft_full $TRACELLM train "${S[@]}" --steps 6 --data rows.bin --out full
check sft_part1 $TRACELLM train "${S[@]}" --steps 6 --data rows.bin --out part --stop-after 3
check sft_part2 $TRACELLM train --sft --resume --steps 6 --lr 1e-3 "${TINY[@]}" --data rows.bin --out part
check sft_resume_identical_model cmp full/model.bin part/model.bin
check sft_resume_identical_optim cmp full/optim.bin part/optim.bin
check sft_resume_identical_log cmp <(logcore full/log.jsonl) <(logcore part/log.jsonl)

# ---- the real pipeline on the synthetic corpus, with the held-out score ----
for cmd in synth prepare render tokenizer shards; do
  if ! $TRACELLM $cmd --help >/dev/null 2>&1; then skip e2e_sft_pipeline "tracellm $cmd is not built"; done_tests; fi
done
$TRACELLM synth --graphs 300 --seed 5 --services 8 --microservices 60 --tail 0 --max-edges 20 --out syn.csv.gz --quiet >/dev/null
$TRACELLM prepare --input syn.csv.gz --out prep --quiet >/dev/null
$TRACELLM render --in prep/train.jsonl --format recursive --out rec.txt >/dev/null 2>&1
check sft_data_paper $TRACELLM sft data --graphs prep/train.jsonl --stats prep/stats.json --fraction 0.5 --out paper.txt
check sft_data_template $TRACELLM sft data --graphs prep/train.jsonl --stats prep/stats.json --fraction 0.5 --distinct-prob 1 --out new.txt
check sft_data_template_only_when_asked bash -c "! grep -q 'Call at most' paper.txt && grep -q '^Call at most [0-9]* distinct microservices in this layer$' new.txt"
check sft_data_same_answers cmp <(grep -v '^Call at most' new.txt | grep -c '^<layer>') <(grep -c '^<layer>' paper.txt)
check sft_data_parses $TRACELLM render --parse new.txt --out back.jsonl
# --canonical-order (docs/SFT.md): the same samples, every edge and block in the fixed order inference uses
check sft_data_canonical $TRACELLM sft data --graphs prep/train.jsonl --stats prep/stats.json --fraction 0.5 --canonical-order --out canon.txt
check sft_data_canonical_edges bash -c "grep '^(' canon.txt | grep -cvE '^\(edge_id is [0-9]+,type is [a-z]+,destination is [A-Za-z0-9_]+,communication starts at [0-9]+ milliseconds,communication finishes at [0-9]+ milliseconds\)$' | grep -qx 0"
check sft_data_paper_edges_shuffled bash -c "grep '^(' paper.txt | grep -vqE '^\(edge_id is '"
check sft_data_canonical_blocks bash -c "grep -o '<subgraph of edge_id [0-9]*>[^<]*' canon.txt | cut -d'>' -f2 | sed -E 's/:[^/]*//g' | sort -u | grep -qx 'id/start_node/caller/num_edges/num_current_edges/num_subgraphs/remaining_depth/start_edge_id/start_communication_at/latency'"
check sft_data_canonical_same_layers cmp <(grep -c '^<layer>' canon.txt) <(grep -c '^<layer>' paper.txt)
check sft_data_canonical_parses bash -c "$TRACELLM render --parse canon.txt --out cback.jsonl && $TRACELLM render --parse paper.txt --out pback.jsonl && cmp cback.jsonl pback.jsonl"
expect_fail render_canonical_tabular "applies to --format recursive or instruction" $TRACELLM render --in prep/train.jsonl --format tabular --canonical-order --out t.txt
expect_fail shards_canonical_text "applies to --graphs" $TRACELLM shards --text canon.txt --format instruction --canonical-order --tokenizer x --out y
$TRACELLM tokenizer train --in rec.txt new.txt --out tok.bin --vocab-size 600 --quiet >/dev/null
$TRACELLM shards --graphs prep/train.jsonl --format recursive --tokenizer tok.bin --out sh --seq-len 384 --quiet >/dev/null
check sft_shards_text $TRACELLM shards --text new.txt --format instruction --tokenizer tok.bin --out ish --name sft --seq-len 384 --quiet
check sft_pipeline_pretrain $TRACELLM train --data sh/train_000000.bin --out rp --layers 2 --heads 2 --embd 32 --seq-len 384 "${TINY[@]}" --steps 2
check sft_pipeline_sft $TRACELLM train --sft --init rp --data ish/sft_000000.bin --out rs --steps 4 "${TINY[@]}" \
  --tokenizer tok.bin --sft-eval prep/val.jsonl --sft-eval-n 3 --sft-eval-tokens 24 --sft-eval-every 2
check sft_eval_logged "$PY" -c "
import json
rows = [json.loads(l) for l in open('rs/log.jsonl')]
ev = [r for r in rows if 'sft_score' in r]
assert [r['step'] for r in ev] == [2, 4], ev
for r in ev:
    assert r['sft_layers'] == 3 and 0 <= r['sft_score'] <= r['sft_valid'] <= 1 and r['sft_score'] <= r['sft_parsed'], r
"
check sft_score_cli $TRACELLM sft score --model rs --graphs prep/val.jsonl --tokenizer tok.bin -n 3 --max-tokens 24 --threads 1 \
  --distinct --json score.json --answers answers.jsonl
check sft_score_outputs "$PY" -c "
import json
s = json.load(open('score.json'))
a = [json.loads(l) for l in open('answers.jsonl')]
assert s['layers'] == 3 == len(a) and s['distinct_asked'] >= 1, s
assert s['score'] == sum(x['parsed'] and x['counts'] and x['valid'] for x in a) / 3, (s, a)
"
check sft_score_constrained $TRACELLM sft score --model rs --graphs prep/val.jsonl --tokenizer tok.bin -n 2 --max-tokens 48 --threads 1 \
  --distinct --constrained --json cscore.json
check sft_score_constrained_json "$PY" -c "
import json
s = json.load(open('cscore.json'))
assert s['layers'] == 2 and 0 <= s['score'] <= 1 and s['distinct_asked'] >= 1, s
"
expect_fail sft_score_tokenizer_mismatch "tokenizer mismatch" $TRACELLM sft score --model pre --graphs prep/val.jsonl --tokenizer tok.bin -n 2
expect_fail sft_score_bad_graphs "bad.jsonl:1" bash -c "echo '{\"trace_id\":' > bad.jsonl; $TRACELLM sft score --model rs --graphs bad.jsonl --tokenizer tok.bin -n 2"
expect_fail sft_unknown_subcommand "unknown subcommand" $TRACELLM sft frobnicate
done_tests
