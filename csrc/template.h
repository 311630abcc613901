/* template.h: compile the file named by TEMPLATE once per real type, as name_f32 with real = float and
 * as name_f64 with real = double. A kernel file reads top-down in two parts:
 *
 *   #ifndef real            compiled once: includes, and the helpers that do not depend on the type
 *   ...
 *   #define TEMPLATE "conv2d.c"
 *   #include "template.h"   includes this same file twice more, with real defined
 *   #else                   compiled per real type: the kernels, written with `real` and K(name)
 *   ...
 *   #endif
 *
 * A file that calls exp/log/sqrt on reals includes <tgmath.h> first, so that each call picks the float or
 * the double function from its argument's type. cnn.h instantiates its templated prototypes the same way. */
#define real float
#define K(name) name##_f32
#include TEMPLATE
#undef real
#undef K

#define real double
#define K(name) name##_f64
#include TEMPLATE
#undef real
#undef K
