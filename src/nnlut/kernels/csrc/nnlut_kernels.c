/* nnlut fused CPU kernels, one translation unit from its parts (so that the compiler keeps
 * inlining across them): helpers, segment search, table entry points, row kernels
 * (softmax, attention softmax, LayerNorm), fixed-point tables and fused attention. Built by
 * nnlut.kernels._build, whose cache key covers every part. */
#include "common.h"
#include "vec8.h"
#include "search.h"
#include "table.h"
#include "rows.h"
#include "fixed.h"
#include "flash.h"

int nnlut_kernels_abi(void) { return 3; }
