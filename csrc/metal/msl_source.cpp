// Assembles the MSL source of the Metal backend. Filled in by the Metal backend issue.
#include <string>
