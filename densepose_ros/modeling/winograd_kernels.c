/* Winograd F(2x2, 3x3) input and output transforms, each fused into one pass over memory.

   Compiled on first use by densepose_ros/modeling/native.py (the system C compiler, the
   machine's own vector instructions) and called through ctypes, which releases the GIL, so
   Python threads split the tiles between cores. The same arithmetic, in the same order, as
   the torch-op transforms in winograd.py: results are bit-identical to them (tested), so
   float32 stays within float32 rounding of the direct convolution.

   Layouts: NHWC with channels contiguous (channel stride 1; other strides in elements).
   Tile t of an [N, H, W] map with th = ceil(H / 2), tw = ceil(W / 2) tiles per side is
   box t / (th tw), tile row (t / tw) % th, tile column t % tw; it reads input rows
   2 ty - 1 .. 2 ty + 2 and columns 2 tx - 1 .. 2 tx + 2 (zero outside the map: padding 1) and
   gives outputs 2 ty .. 2 ty + 1, 2 tx .. 2 tx + 1. Transformed tiles are [16, T, C]: row
   4 i + j holds element (i, j) of the 4x4 tile. Channel counts are multiples of 16. */

#include <stddef.h>

/* 16 floats, any alignment: gcc and clang lower them to the machine's vector registers. */
typedef float vf __attribute__((vector_size(64), aligned(4), may_alias));
typedef int vi __attribute__((vector_size(64)));
#define AT(p) (*(vf *)(p))
#define AT_CONST(p) (*(const vf *)(p))

/* V = B^T d B for tiles [t_begin, t_end): B^T rows (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0),
   (0, 1, 0, -1), first along the rows then along the columns. `tiles` holds tile t_first at
   row 0 of each of its 16 planes, `plane` floats apart; `zeros` is C zero floats. */
void winograd_input_tiles(const float *restrict x, long sn, long sy, long sx, long h, long w,
                          long c_count, long th, long tw, long t_first, long t_begin,
                          long t_end, float *restrict tiles, long plane,
                          const float *restrict zeros) {
    for (long t = t_begin; t < t_end; t++) {
        long n = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
        const float *d[4][4];
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                long y = 2 * ty - 1 + a, xx = 2 * tx - 1 + b;
                d[a][b] = (y >= 0 && y < h && xx >= 0 && xx < w)
                              ? x + n * sn + y * sy + xx * sx : zeros;
            }
        float *o = tiles + (t - t_first) * c_count;
        for (long c = 0; c < c_count; c += 16) {
            vf r[4][4];
            for (int b = 0; b < 4; b++) {
                vf d0 = AT_CONST(d[0][b] + c), d1 = AT_CONST(d[1][b] + c);
                vf d2 = AT_CONST(d[2][b] + c), d3 = AT_CONST(d[3][b] + c);
                r[0][b] = d0 - d2;
                r[1][b] = d1 + d2;
                r[2][b] = d2 - d1;
                r[3][b] = d1 - d3;
            }
            for (int i = 0; i < 4; i++) {
                AT(o + (4 * i + 0) * plane + c) = r[i][0] - r[i][2];
                AT(o + (4 * i + 1) * plane + c) = r[i][1] + r[i][2];
                AT(o + (4 * i + 2) * plane + c) = r[i][2] - r[i][1];
                AT(o + (4 * i + 3) * plane + c) = r[i][1] - r[i][3];
            }
        }
    }
}

/* out = A^T M A (+ bias, then ReLU if `relu`) for tiles [t_begin, t_end): A^T rows
   (1, 1, 1, 0), (0, 1, -1, -1), first along the rows then along the columns; the bias goes
   into M[1][1], which A^T M A copies into all four outputs with weight 1. `products` holds
   tile t_first at row 0 of each of its 16 planes, `plane` floats apart. Outputs past H, W
   (odd sides) are not written. */
void winograd_output_tiles(const float *restrict products, long plane,
                           const float *restrict bias, int relu, float *restrict out, long sn,
                           long sy, long sx, long h, long w, long k_count, long th, long tw,
                           long t_first, long t_begin, long t_end) {
    const vf zero = {0};
    for (long t = t_begin; t < t_end; t++) {
        long n = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
        const float *m = products + (t - t_first) * k_count;
        float *o = out + n * sn + 2 * ty * sy + 2 * tx * sx;
        int rows = 2 * ty + 1 < h ? 2 : 1, second_column = 2 * tx + 1 < w;
        for (long k = 0; k < k_count; k += 16) {
            vf mm[16];
            for (int q = 0; q < 16; q++)
                mm[q] = AT_CONST(m + q * plane + k);
            mm[5] = mm[5] + AT_CONST(bias + k);
            vf half[2][4];
            for (int j = 0; j < 4; j++) {
                half[0][j] = (mm[4 + j] + mm[8 + j]) + mm[j];
                half[1][j] = (mm[4 + j] - mm[8 + j]) - mm[12 + j];
            }
            for (int oy = 0; oy < rows; oy++) {
                vf v0 = (half[oy][1] + half[oy][2]) + half[oy][0];
                vf v1 = (half[oy][1] - half[oy][2]) - half[oy][3];
                if (relu) { /* clear negatives; NaN stays NaN, as torch.relu */
                    v0 = (vf)((vi)v0 & ~(v0 < zero));
                    v1 = (vf)((vi)v1 & ~(v1 < zero));
                }
                AT(o + oy * sy + k) = v0;
                if (second_column)
                    AT(o + oy * sy + sx + k) = v1;
            }
        }
    }
}
