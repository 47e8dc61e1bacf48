/* ironbridge plugin SDK: the one header a plugin includes. */
#ifndef IRONBRIDGE_IRONBRIDGE_H
#define IRONBRIDGE_IRONBRIDGE_H

#include "error.h"
#include "log.h"
#include "plugin.h"
#include "schema.h"
#include "value.h"

#endif
