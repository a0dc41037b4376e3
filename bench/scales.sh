# bench/scales.sh: the numbers of each --scale (sourced by bench/run and
# bench/generate).  scale_set SCALE sets them; a few may be overridden from
# the environment (BENCH_CUSTOMERS=..., BENCH_DUE_LOTS=..., ...).
#
#   scale   stores  customers  SKUs    promotions  due lots   history  memory  refund pool
#   tiny        50      1,000     500         200      5,000       300   2,000          100
#   small      100    100,000   5,000         200    200,000    20,000  20,000        1,000
#   chain    1,000  3,000,000  30,000         200  1,000,000   300,000 100,000        2,000
#
# due lots: point lots expiring within 30 days, what the expire_points
# benchmark expires (the target is for 1M); history: purchases of the
# past year, committed through loyalty.purchase when it is installed;
# memory: checks run in one backend before its memory is read again.

scale_set() {
    case "$1" in
        tiny)  STORES=50;   CUSTOMERS=1000;    SKUS=500;   PROMOTIONS=200; DUE_LOTS=5000
               HISTORY=300;    MEMORY_CALLS=2000;   REFUND_POOL=100 ;;
        small) STORES=100;  CUSTOMERS=100000;  SKUS=5000;  PROMOTIONS=200; DUE_LOTS=200000
               HISTORY=20000;  MEMORY_CALLS=20000;  REFUND_POOL=1000 ;;
        chain) STORES=1000; CUSTOMERS=3000000; SKUS=30000; PROMOTIONS=200; DUE_LOTS=1000000
               HISTORY=300000; MEMORY_CALLS=100000; REFUND_POOL=2000 ;;
        *) echo "unknown scale \"$1\" (tiny, small or chain)" >&2; return 1 ;;
    esac
    SCALE=$1
    STORES=${BENCH_STORES:-$STORES}
    CUSTOMERS=${BENCH_CUSTOMERS:-$CUSTOMERS}
    SKUS=${BENCH_SKUS:-$SKUS}
    PROMOTIONS=${BENCH_PROMOTIONS:-$PROMOTIONS}
    DUE_LOTS=${BENCH_DUE_LOTS:-$DUE_LOTS}
    HISTORY=${BENCH_HISTORY:-$HISTORY}
    MEMORY_CALLS=${BENCH_MEMORY_CALLS:-$MEMORY_CALLS}
    REFUND_POOL=${BENCH_REFUND_POOL:-$REFUND_POOL}
}
