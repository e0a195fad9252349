import SpoolCLI
import Glibc
exit(SpoolCLI.run(Array(CommandLine.arguments.dropFirst())))
