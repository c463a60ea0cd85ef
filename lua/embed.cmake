# embed.cmake - run as `cmake -DIN=file.lua -DOUT=file.c -DNAME=symbol -P embed.cmake`.
# Writes the bytes of IN as a C array so the source travels inside the binary.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# One line per 16 bytes keeps the generated file readable in a debugger.
string(REPEAT "0x..," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n\t" bytes "${bytes}")
file(WRITE ${OUT}.tmp
"/* Generated from ${IN} by lua/embed.cmake; do not edit. */\n#include <stddef.h>\n\nconst unsigned char ${NAME}[] = {\n\t${bytes}0x00\n};\n/* Length without the terminating NUL added above. */\nconst size_t ${NAME}_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
