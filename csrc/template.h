/* template.h: compile the file named by TEMPLATE once per real type.
 * A kernel file writes its body under `#ifdef real`, using `real` and K(name); its `#else` branch
 * defines TEMPLATE as its own name and includes this file. <tgmath.h> makes exp/log/sqrt/tanh
 * pick the float or double function from the argument's type. */
#include <tgmath.h>
#include "cnn.h"

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
