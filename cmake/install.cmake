# Install rules: the library, its header, the command (see tools/).
install(TARGETS keepalive EXPORT keepalive-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/keepalive)
