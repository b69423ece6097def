// Prints the Metal backend's unavailability reason (no_metal.cpp) for tests/test_metal_build.py.
#include <cstdio>
#include <string>

namespace fc {
std::string metal_unavailable_reason();
}

int main() { std::puts(fc::metal_unavailable_reason().c_str()); }
