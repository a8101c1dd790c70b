<?xml version="1.0" encoding="utf-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns="http://www.w3.org/1999/xhtml">
  <xsl:output method="xml" encoding="utf-8" indent="yes"
    doctype-public="-//W3C//DTD XHTML 1.0 Strict//EN"
    doctype-system="http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"/>
  <xsl:template match="/portmap">
    <html>
      <head>
        <title>Running applications</title>
        <link rel="stylesheet" type="text/css" href="/portmap/portmap.css"/>
      </head>
      <body>
        <h1>Running applications</h1>
        <table>
          <thead>
            <tr><th>Service</th><th>User</th><th>Process ID</th><th>Port</th><th>Program</th><th>Health</th></tr>
          </thead>
          <tbody>
            <xsl:for-each select="instance">
              <xsl:sort select="service"/>
              <xsl:sort select="user" data-type="number"/>
              <xsl:sort select="pid" data-type="number"/>
              <tr>
                <xsl:attribute name="class">
                  <xsl:choose>
                    <xsl:when test="position() mod 2 = 1">odd</xsl:when>
                    <xsl:otherwise>even</xsl:otherwise>
                  </xsl:choose>
                </xsl:attribute>
                <td><xsl:value-of select="service"/></td>
                <td><xsl:value-of select="user"/></td>
                <td><xsl:value-of select="pid"/></td>
                <td><xsl:value-of select="port"/></td>
                <td><xsl:value-of select="prog"/></td>
                <td><xsl:value-of select="health"/></td>
              </tr>
            </xsl:for-each>
          </tbody>
        </table>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
